"""Strategies as data: stages, conditions and actions; evaluation, priority, work queues, champion/challenger.

Pure core: nothing here touches the database. `load_strategy` reads TOML files (packaged, or from the
operator's directory named by ``ARREARS_STRATEGY_DIR``); `evaluate` / `evaluate_frame` decide each account's
stage and planned actions for an explicit as-of date.
"""
