"""The warm reconstruction worker (``pinnacle serve``): channel, server and client; docs/worker.md."""
