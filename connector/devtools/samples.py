"""Sample Segment-spec messages and Customer.io reporting webhooks, deterministic for a given seed (pure).

Used by the demo, ``demo-producer`` (docker compose) and the benchmarks, so they all send the same
realistic mix: identify, track (including device and deletion events), page, screen, group, alias.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

PLANS = ("free", "pro", "team", "enterprise")
EVENTS = ("Order Completed", "Product Viewed", "Cart Viewed", "Signed Up", "Checkout Started", "Coupon Applied")
PAGES = ("/", "/pricing", "/docs/getting-started", "/blog/launch", "/account/settings")
SCREENS = ("Home", "Settings", "Checkout", "Product Detail")
WEBHOOK_METRICS = (
    ("email", "sent"),
    ("email", "delivered"),
    ("email", "opened"),
    ("email", "clicked"),
    ("email", "bounced"),
    ("push", "delivered"),
    ("push", "opened"),
    ("sms", "delivered"),
    ("in_app", "opened"),
    ("customer", "unsubscribed"),
)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def iso(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, as analytics SDKs write timestamps."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SampleEvents:
    """An endless, reproducible stream of Segment messages for ``users`` people."""

    def __init__(self, seed: int = 7, users: int = 1000) -> None:
        self._rng = random.Random(seed)
        self._users = users
        self._n = 0

    def user(self) -> str:
        """A user id from the population."""
        return f"user-{self._rng.randrange(self._users)}"

    def message(self, now_ms: int) -> dict[str, Any]:
        """The next message: about 30% identify, 45% track, 10% page, 5% screen, 5% group, 5% other."""
        self._n += 1
        rng = self._rng
        user = self.user()
        base: dict[str, Any] = {
            "messageId": f"msg-{self._n}-{rng.getrandbits(32):08x}",
            "userId": user,
            "timestamp": iso(now_ms),
            "context": {"library": {"name": "analytics-python", "version": "2.3.0"}, "ip": "203.0.113.7"},
        }
        roll = rng.random()
        if roll < 0.30:
            base.update(
                type="identify",
                traits={
                    "email": f"{user}@example.com",
                    "name": f"User {user[5:]}",
                    "plan": rng.choice(PLANS),
                    "createdAt": iso(now_ms - rng.randrange(10**10)),
                    "logins": rng.randrange(500),
                    "beta": rng.random() < 0.2,
                },
            )
        elif roll < 0.75:
            base.update(
                type="track",
                event=rng.choice(EVENTS),
                properties={
                    "order_id": f"A-{rng.randrange(10**6)}",
                    "revenue": round(rng.random() * 300, 2),
                    "currency": "USD",
                    "products": [{"sku": f"SKU-{rng.randrange(999)}", "quantity": rng.randrange(1, 4)}],
                },
            )
        elif roll < 0.85:
            path = rng.choice(PAGES)
            base.update(
                type="page",
                name=path.strip("/") or "Home",
                properties={"url": f"https://shop.example.com{path}", "path": path, "title": "Example Shop"},
            )
        elif roll < 0.90:
            base.update(type="screen", name=rng.choice(SCREENS), properties={"variant": rng.choice("AB")})
        elif roll < 0.95:
            base.update(
                type="group",
                groupId=f"company-{rng.randrange(50)}",
                traits={"name": "Acme Inc", "industry": "Retail", "employees": rng.randrange(10, 5000)},
            )
        elif roll < 0.98:
            base.update(
                type="track",
                event="Application Opened",
                context={
                    **base["context"],
                    "device": {"token": f"tok-{user}", "type": rng.choice(("ios", "android"))},
                    "app": {"version": "3.4.1"},
                },
                properties={"from_background": False},
            )
        else:
            base.update(type="alias", previousId=f"anon-{rng.getrandbits(40):010x}")
        return base


def webhook_payload(rng: random.Random, now_s: int, n: int) -> dict[str, Any]:
    """A reporting webhook like Customer.io sends (Customer.io's reporting-webhooks docs)."""
    object_type, metric = WEBHOOK_METRICS[n % len(WEBHOOK_METRICS)]
    user = f"user-{rng.randrange(1000)}"
    event_id = "01" + "".join(rng.choice(CROCKFORD) for _ in range(24))
    data: dict[str, Any] = {
        "customer_id": user,
        "identifiers": {"id": user, "email": f"{user}@example.com", "cio_id": f"a{rng.getrandbits(32):08x}"},
    }
    if object_type == "customer":
        data["email_address"] = f"{user}@example.com"
    else:
        data.update(
            campaign_id=rng.randrange(1, 40),
            action_id=rng.randrange(1, 200),
            delivery_id=f"dlv{rng.getrandbits(64):016x}",
            journey_id="01" + "".join(rng.choice(CROCKFORD) for _ in range(24)),
        )
        if object_type == "push":
            data["recipients"] = [{"device_id": f"tok-{user}", "device_platform": "ios"}]
        else:
            data["recipient"] = f"{user}@example.com" if object_type == "email" else "+14155550100"
        if object_type == "email":
            data["subject"] = "Your order has shipped"
        if metric == "clicked":
            data.update(href="https://shop.example.com/sale", link_id=3, machine=False)
        if metric == "bounced":
            data["failure_message"] = "550 5.1.1 mailbox does not exist"
    return {"event_id": event_id, "object_type": object_type, "metric": metric, "timestamp": now_s, "data": data}
