"""The web dashboard, JSON API and /metrics (`queuectl dashboard`; needs the `web` extra)."""
