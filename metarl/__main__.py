import os
import signal
import sys


def _stopped_while_importing(signum: int, frame: object) -> None:
    # Until metarl.cli has loaded (torch, Lightning, W&B: several seconds), a stop signal would end
    # the process without a word; there is nothing to save yet.
    # os._exit, not SystemExit: raised inside an extension module's import (numpy's, under load), the
    # exception is turned into an ImportError and a traceback. Nothing is open for writing yet.
    sys.stderr.write(f"metarl: stopped by {signal.Signals(signum).name} during start-up, before training started: "
                     "nothing to save yet\n")
    sys.stderr.flush()
    os._exit(128 + signum)


if __name__ == "__main__":
    for _signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_signum, _stopped_while_importing)
    if sys.argv[1:2] == ["plot"]:
        from metarl.plot import main as plot_main

        sys.exit(plot_main(sys.argv[2:]))
    from metarl.cli import main

    main()
