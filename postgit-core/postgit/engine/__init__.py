"""The engine: the worker, its claim loop and the executor that runs steps."""

from postgit.engine.executor import Executor
from postgit.engine.worker import Worker

__all__ = ["Executor", "Worker"]
