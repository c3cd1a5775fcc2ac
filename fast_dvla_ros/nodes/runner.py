"""Process boilerplate shared by the three nodes: init, spin, and a quiet exit on Ctrl-C.

A node constructor raises ``StartupError`` for a problem the user must fix (bad checkpoint, bad
parameter): ``run_node`` logs that one line and returns exit code 2 instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node


class StartupError(RuntimeError):
    """A configuration problem that prevents the node from starting (message is shown to the user)."""


def run_node(factory: Callable[[], Node], argv: list[str] | None, threads: int = 2) -> int:
    """Create the node with ``factory`` after rclpy.init and spin it; return the process exit code.

    ``threads`` = 1 spins a SingleThreadedExecutor (nodes whose callbacks are all short), more a
    MultiThreadedExecutor with that many threads.

    A node ends the spin by setting ``node.finished = True`` (and optionally ``node.exit_code``), and
    may define ``close()`` to stop its own threads before the node is destroyed.
    """
    args = sys.argv if argv is None else [sys.argv[0], *argv]
    rclpy.init(args=args)
    node: Node | None = None
    executor = None
    code = 0
    try:
        node = factory()
        executor = SingleThreadedExecutor() if threads <= 1 else MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        while rclpy.ok() and not getattr(node, "finished", False):
            executor.spin_once(timeout_sec=0.1)
        code = int(getattr(node, "exit_code", 0))
    except StartupError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr, flush=True)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    finally:
        # Order matters: the executor lets go of the node's wait set before the node is destroyed
        # (destroying a node an executor still holds can crash rcl at exit).
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code
