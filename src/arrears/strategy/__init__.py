"""Strategies as data: stages, conditions and actions; evaluation, priority, work queues, champion/challenger.

Pure core: nothing here touches the database.

- `definition`: the pydantic shape of a strategy file (stages, ``when`` blocks, actions, exits, priority).
- `loader`: `load_strategy(name_or_path)` and `list_strategies()`; packaged files in ``strategies/``,
  operator files in the directory named by ``ARREARS_STRATEGY_DIR``.
- `evaluate`: `evaluate(snapshot, strategy, as_of)` for one account, `evaluate_frame(df, strategy, as_of)`
  for a portfolio (Polars), `planned_actions_frame` (one row per action), `advance` (next day's history).
- `explain`: conditions in words, zh_CN and English (PI-7).
- `priority`: the priority score of call and visit tasks, scalar and Polars.
- `queues`: work queues as data (``queues/``, ``ARREARS_QUEUE_DIR``) and `allocate` to collectors.
- `experiment`: champion / challenger split by a stable hash of the account id.
"""
