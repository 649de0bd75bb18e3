"""An order: charge the card, notify in parallel, wait for approval, ship each line, refund if any of that fails.

Deploy it with ``pst deploy examples/order.py`` and start it with an input such as::

    pst run order --input '{"order_id": "o-1", "email": "ada@example.com", "amount": 42,
                            "lines": [{"sku": "tea", "qty": 2}, {"sku": "cup", "qty": 1}],
                            "api": "http://localhost:8080"}'

``api`` is the base URL of the shop's own service (charge, warehouse, ship, refund). The instance waits for an
approval sent by order id, from any system that knows the order but not the instance::

    pst event send --key o-1 approval --data '{"approved": true}'
"""

from postgit import ForEach, HitEndpoint, Parallel, SendEmail, Sequence, Switch, Try, WaitForEvent, Workflow, ref

INPUT_SCHEMA = {
    "type": "object",
    "required": ["order_id", "email", "amount", "lines", "api"],
    "properties": {
        "order_id": {"type": "string", "minLength": 1},
        "email": {"type": "string"},
        "amount": {"type": "number", "exclusiveMinimum": 0},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            },
        },
        "api": {"type": "string"},
    },
}


def workflow():
    charge = HitEndpoint(
        id="charge",
        url="{{ input.api }}/charge",
        method="POST",
        json={"order": ref("$.input.order_id"), "amount": ref("$.input.amount")},
        assign_to="$.charge",
    )
    fulfil = Sequence(
        id="fulfil",
        children=[
            Parallel(
                id="notify",
                branches={
                    "customer": SendEmail(
                        id="email-customer",
                        to=ref("$.input.email"),
                        subject="Order {{ input.order_id }} received",
                        body="We charged {{ input.amount }} and will ship once the order is approved.",
                    ),
                    "warehouse": HitEndpoint(
                        id="tell-warehouse",
                        url="{{ input.api }}/warehouse",
                        method="POST",
                        json={"order": ref("$.input.order_id"), "lines": ref("$.input.lines")},
                    ),
                },
            ),
            WaitForEvent(
                id="approval",
                event="approval",
                key="{{ input.order_id }}",
                timeout=24 * 3600,
                assign_to="$.approval",
            ),
            # Only an approved order ships: with no default, anything else fails here and the catch refunds it.
            Switch(
                id="approved",
                cases=[
                    (
                        "not approval.timed_out and approval.data.approved",
                        ForEach(
                            id="ship",
                            items=ref("$.input.lines"),
                            concurrency=5,
                            body=HitEndpoint(
                                id="ship-line",
                                url="{{ input.api }}/ship",
                                method="POST",
                                json={
                                    "order": ref("$.input.order_id"),
                                    "sku": ref("$.item.sku"),
                                    "qty": ref("$.item.qty"),
                                },
                            ),
                            assign_to="$.shipments",
                        ),
                    )
                ],
            ),
        ],
    )
    refund = Sequence(
        id="refund-order",
        children=[
            HitEndpoint(
                id="refund",
                url="{{ input.api }}/refund",
                method="POST",
                json={
                    "order": ref("$.input.order_id"),
                    "charge": ref("$.charge.body"),
                    "reason": "{{ error.message }}",
                },
                assign_to="$.refund",
            ),
            SendEmail(
                id="email-refund",
                to=ref("$.input.email"),
                subject="Order {{ input.order_id }} refunded",
                body="We refunded your order: {{ error.message }}",
            ),
        ],
    )
    return Workflow(
        Sequence(id="order", children=[charge, Try(id="after-charge", body=fulfil, catch=refund)]),
        timeout=7 * 24 * 3600,
        input_schema=INPUT_SCHEMA,
    )
