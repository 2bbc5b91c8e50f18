"""Production profile: PostgreSQL tracker store, Redis lock store, several Rasa servers and
action servers behind nginx, with readiness endpoints and Prometheus metrics.

Modules
  settings      connection settings and ports from environment variables (ZWZX_*)
  store         SQL tracker store that fails loudly (no silent in-memory fallback)
  lock_store    Redis ticket lock store with atomic (WATCH/MULTI) ticket operations
  metrics       Prometheus metric definitions shared by the Rasa-server hooks
  rasa_app      hooks for the Rasa server: /ready, /metrics, latency middleware, clean 503s,
                "系统繁忙" reply when the action server cannot be reached
  serve         `python -m bot.ops.serve run ...`: `rasa run` with those hooks installed
  actions_server `python -m bot.ops.actions_server --port P`: rasa-sdk action server with
                /ready and /metrics
  db            `python -m bot.ops.db migrate|check`: create the database and tables
  cluster       `python -m bot.ops.cluster`: start N Rasa + M action servers + nginx, supervise
  tcpproxy      a small TCP proxy used to simulate a database outage in the fault tests

See docs/production.md.
"""
