"""The seed's example: fetch data, wait, send an email with what was fetched.

It runs offline: ``fetch-data`` calls the Postgit server's own ``/health`` (``pst dev`` serves it on port 3000),
and with no ``POSTGIT_SMTP_URL`` the email goes to the outbox (``pst outbox ls``).

    pst deploy examples/demo.py
    pst run demo --watch
"""

from postgit import HitEndpoint, SendEmail, Sequence, Sleep, ref


def workflow():
    return Sequence(
        id="root",
        children=[
            HitEndpoint(id="fetch-data", url="http://localhost:3000/health", assign_to="$.fetchResult"),
            Sleep(id="wait", seconds=10),
            SendEmail(
                id="notify", to="user@example.com", subject="Workflow Complete", body=ref("$.fetchResult.body.status")
            ),
        ],
    )
