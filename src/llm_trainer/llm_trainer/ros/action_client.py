"""rclpy's ``ActionClient`` without the goal-future leak of rclpy 9.1 (Kilted, the newest on PyPI).

``ActionClient.send_goal_async`` there registers two futures per goal with the client's waitable and
completes only the second (a duplicated block, fixed upstream in ros2/rclpy#1532, October 2025). The
first stays in the waitable's ``_futures`` for the life of the client, and the executor walks that
list each time the client has data (every goal response, result, feedback and status message): a
client that sends 17 goals an episode holds 17,000 dead futures after 1,000 episodes and pays a walk
over them per message. Found by a soak with ``scripts/soak_generation.py --tracemalloc``: the
executor node's allocations grew by one ``Future`` per controller goal.

This subclass drops the orphan after each send; on an rclpy without the bug there is none to drop.
"""

from __future__ import annotations

from rclpy.action import ActionClient as _RclpyActionClient


class ActionClient(_RclpyActionClient):
    def send_goal_async(self, goal, feedback_callback=None, goal_uuid=None):
        future = super().send_goal_async(goal, feedback_callback=feedback_callback, goal_uuid=goal_uuid)
        with self._lock:
            # A future the client still answers is one of its pending requests; any other one that is not
            # done never will be (the orphan of this send, or of an earlier one).
            pending = {
                id(f)
                for table in (self._pending_goal_requests, self._pending_result_requests, self._pending_cancel_requests)
                for f in table.values()
            }
            self._futures[:] = [f for f in self._futures if f is future or f.done() or id(f) in pending]
        return future
