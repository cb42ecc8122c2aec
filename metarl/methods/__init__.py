"""The meta-RL methods: one folder each, holding the method's whole algorithm box.

A method is a pair of LightningModules (``metarl.training.module``): a ``MetaTrainModule`` subclass
that meta-trains and an ``AdaptModule`` subclass that says what adapting to a new task means for it.
Configs pick one with ``model.class_path`` (e.g. ``metarl.methods.mql.MQLMetaTrain``).
"""
