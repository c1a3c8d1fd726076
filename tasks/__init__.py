"""Built-in tasks, one module per task, registered through the ``register_tasks`` hook."""
