"""Process boilerplate shared by the three nodes: init, spin, and a quiet exit on Ctrl-C.

A node constructor raises ``StartupError`` for a problem the user must fix (bad checkpoint, bad
parameter): ``run_node`` logs that one line and returns exit code 2 instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


class StartupError(RuntimeError):
    """A configuration problem that prevents the node from starting (message is shown to the user)."""


def run_node(
    factory: Callable[[], Node], argv: list[str] | None, threads: int = 2, *, skip_finalization: bool = False
) -> int:
    """Create the node with ``factory`` after rclpy.init and spin it; return the process exit code.

    ``threads`` = 1 spins a SingleThreadedExecutor (nodes whose callbacks are all short), more a
    MultiThreadedExecutor with that many threads.

    A node ends the spin by setting ``node.finished = True`` (and optionally ``node.exit_code``), and
    may define ``close()`` to stop its own threads before the node is destroyed.

    SIGINT and SIGTERM only set a flag that the loop checks between spins (at most 0.1 s later), instead of
    rclpy's handler, which raises KeyboardInterrupt wherever the main thread is, callbacks and node
    teardown included. An executor process has exited with SIGSEGV after one SIGINT under load (in CI),
    and a KeyboardInterrupt inside ``destroy_node`` is a known rclpy segfault (ros2/rclpy#178);
    with the flag, teardown always runs whole, in order.

    ``skip_finalization``: once the node, its threads and rclpy are shut down and the output is flushed,
    end the process with ``os._exit`` instead of returning, skipping the interpreter's own finalization:
    with torch and a model loaded that alone took 0.7-1.4 s on a loaded 2-core machine (measured),
    while launch gives a process 5 s from SIGINT to SIGTERM and a user at Ctrl-C expects the
    node gone at once. Nothing is lost: rclpy's logging is closed by its shutdown, and no exit handler
    of ours is pending. For a process entry point only (never call it so from a test process).
    """
    args = sys.argv if argv is None else [sys.argv[0], *argv]
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # kept until the process exits: a late signal must not kill it
        signal.signal(sig, lambda *_: stop.set())
    node: Node | None = None
    executor = None
    code = 0
    try:
        node = factory()
        executor = SingleThreadedExecutor() if threads <= 1 else MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        while rclpy.ok() and not stop.is_set() and not getattr(node, "finished", False):
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
    if skip_finalization:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
