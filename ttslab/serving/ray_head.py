"""``python -m ttslab.serving.ray_head ARGS``: ``ray start ARGS`` with more patience on a busy machine.

``ray start --head`` gives the new raylet a fixed 30 s to register with the GCS (a local constant in
``ray._private.node.Node.__init__``), and the raylet waits a fixed time for the dashboard agent, a
Python process whose imports alone can take longer than that on a loaded 2-core machine. Both
failures were seen while building this package under a load average of 12-20 ("The current node
timed out during startup", and in the raylet's log "Timed out waiting for file .../dashboard_agent...",
a 15 s limit compiled into Ray 2.55's raylet; later Ray reads ``RAY_agent_register_timeout_ms``, set
here for when it does). Here ``ray._private.services.get_node``, which that loop calls, waits up to
:data:`PATIENCE_S` for the node before answering. The raylet is also given the dashboard agent's port on
its command line (``--dashboard_agent_listen_port``, a flag it has but that Ray's Python launcher does
not pass), so it need not wait for the agent at all. Everything else is Ray's own command line; the
launcher retries a start that still fails.
"""

from __future__ import annotations

import os
import sys
import time

#: How long the head waits for its raylet to register (Ray's own limit is 30 s).
PATIENCE_S = 60.0


def main() -> int:
    os.environ.setdefault("RAY_agent_register_timeout_ms", str(int(PATIENCE_S * 1000)))
    import ray._private.services as services
    from ray.scripts.scripts import main as ray_main

    impatient = services.get_node

    def patient_get_node(gcs_address, node_id):
        deadline = time.monotonic() + PATIENCE_S
        while True:
            try:
                return impatient(gcs_address, node_id)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    services.get_node = patient_get_node

    # Ray 2.55 passes the dashboard agent's port to the agent but not to the raylet, which then waits
    # (15 s, compiled in) for the agent to write it to a file; the raylet has the flag, so pass it.
    listen = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--dashboard-agent-listen-port=")]
    plain_start = services.start_ray_process

    def start_with_agent_port(command, process_type, *args, **kwargs):
        if listen and process_type == "raylet":
            command = [command[0], f"--dashboard_agent_listen_port={listen[0]}", *command[1:]]
        return plain_start(command, process_type, *args, **kwargs)

    services.start_ray_process = start_with_agent_port
    sys.argv = ["ray", *sys.argv[1:]]
    return ray_main()


if __name__ == "__main__":
    sys.exit(main())
