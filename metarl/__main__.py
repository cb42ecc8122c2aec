import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["plot"]:
        from metarl.plot import main as plot_main

        sys.exit(plot_main(sys.argv[2:]))
    from metarl.cli import main

    main()
