"""Subscriptions on a node of their own, spun by their own executor on a daemon thread.

For the high-rate streams a busy node listens to (``/joint_states`` and ``/scene/ground_truth`` in the
executor and planner, every recorded topic in the recorder). rclpy's Python executors walk every
entity of their node on each wake-up and hand each message to a thread pool; a node with an action
server, action clients, services and parameters pays that a thousand times a second while an unpaced
simulation streams at 20x real time. Measured on the 2-core VM (stack_blocks through the graph):
the executor node used 89 % of a core with both subscriptions on its main executor and 21 % with
them here; the recorder spent its whole core in the executor's wake-ups, not in its callbacks.

The side node runs a ``SingleThreadedExecutor``: no thread pool per message, and a walk over its
few subscriptions only. Callbacks here must not block: they only store or write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def _side_executor(context):
    # Not rclpy.experimental.EventsExecutor: in a process whose main node spins a MultiThreadedExecutor
    # it left that node's services and actions undiscovered (tried with rclpy 9.1, Kilted).
    return SingleThreadedExecutor(context=context)


class SideNode:
    """A node named ``<parent>_<suffix>`` in the parent's context, spinning until ``close()``."""

    def __init__(self, parent: Node, suffix: str):
        # Not the process's --ros-args: `-r __node:=NAME` would give this node the parent's name too
        # (two nodes of one name, two sets of its parameter services).
        self.node = Node(
            f"{parent.get_name()}_{suffix}",
            namespace=parent.get_namespace(),
            context=parent.context,
            use_global_arguments=False,
            start_parameter_services=False,
        )
        self._executor = _side_executor(parent.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{self.node.get_name()} spin", daemon=True)
        self._thread.start()

    def subscribe(self, msg_type: Any, topic: str, callback: Callable[[Any], None], qos: Any = 10, *, raw=False):
        return self.node.create_subscription(msg_type, topic, callback, qos, raw=raw)

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - the context shutting down ends the spin
            pass

    def close(self) -> None:
        """Idempotent: stop the thread and destroy the node."""
        if self.node is None:
            return
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.node = None
        self._thread.join(timeout=2.0)


class Listener(SideNode):
    """``callback(msg)`` for each message on ``topic``, on a side node of its own."""

    def __init__(self, node: Node, msg_type: Any, topic: str, callback: Callable[[Any], None], qos: Any = 10):
        super().__init__(node, (topic.strip("/").replace("/", "_") or "topic") + "_listener")
        self.subscribe(msg_type, topic, callback, qos)
