"""Start a workflow from your own code with the Python client, and wait for its result.

    DC_API_URL=http://localhost:3000 python examples/client.py

It deploys a small approval workflow, starts it for an order (a second start with the same idempotency key
returns the same instance), approves it with an event, and prints the final state. Needs only `postgit-cli`
(httpx); the server and a worker must be running (`pst dev`).
"""

from __future__ import annotations

import sys

from postgit_cli import Client, InstanceFailed, InvalidDefinition, ServerUnavailable

APPROVAL = {
    "id": "root",
    "type": "Sequence",
    "children": [
        {
            "id": "approval",
            "type": "WaitForEvent",
            "params": {"event": "approved", "timeout": 3600},
            "assignTo": "$.approval",
        },
        {
            "id": "announce",
            "type": "Shout",
            "params": {"text": "order {{ input.order }} approved"},
            "assignTo": "$.said",
        },
    ],
}


def main() -> int:
    try:
        with Client() as client:
            client.deploy(APPROVAL, "approve-order")
            handle = client.start("approve-order", input={"order": "A-1"}, idempotency_key="approve-A-1")
            again = client.start("approve-order", input={"order": "A-1"}, idempotency_key="approve-A-1")
            assert again.id == handle.id and not again.created
            handle.send_event("approved", {"by": "ada"}, event_id="approve-A-1")
            state = handle.result(timeout=60)
    except InvalidDefinition as exc:
        for issue in exc.issues:
            print(f"node {issue['node_id']}, field {issue['field']}: {issue['message']}", file=sys.stderr)
        return 2
    except (InstanceFailed, ServerUnavailable) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{handle.id}: {state['said']['text']} (approved by {state['approval']['data']['by']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
