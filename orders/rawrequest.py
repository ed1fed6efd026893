"""RawRequest: a postback as it arrived, and its JSON form (the spool's on-disk format).

Its own module so that the write path (orders.ingest) and the spool (orders.spool) share it without
importing each other: ingest writes to the spool, the spool knows nothing of ingest.
"""

import base64
from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from partners.api import dump_record

from .models import Delivery


@dataclass
class RawRequest:
    """A postback as it arrived, before anything was concluded from it; JSON-serialisable for the spool."""

    partner: str
    method: str
    query_string: str = ""
    body: bytes = b""
    content_type: str = ""
    remote_addr: str | None = None
    user_agent: str = ""
    headers: dict = field(default_factory=dict)
    received_at: datetime = field(default_factory=timezone.now)
    source: str = Delivery.Source.HTTP
    # The status the URL's token implies (Delivery.implied_status); "" for none.
    implied_status: str = ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["body"] = base64.b64encode(self.body).decode("ascii")
        data["received_at"] = self.received_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict) -> "RawRequest":
        """Inverse of to_json; raises KeyError, TypeError or ValueError on a damaged document."""
        received_at = parse_datetime(data["received_at"])
        if received_at is None:
            raise ValueError("received_at is not a timestamp")
        return cls(**{**data, "body": base64.b64decode(data["body"], validate=True), "received_at": received_at})

    @classmethod
    def of_api_record(cls, partner: str, record: dict) -> "RawRequest":
        """A record of the network's API, read by reconciliation, as the request it stands for: the record
        as it came (JSON, its amounts in their exact digits) is the body."""
        return cls(partner=partner, method="GET", body=dump_record(record), content_type="application/json",
                   user_agent="manage.py reconcile", source=Delivery.Source.RECONCILE)

    @classmethod
    def of_delivery(cls, delivery: Delivery) -> "RawRequest":
        """The request a stored delivery keeps, as it arrived: what a replay reads again."""
        return cls(
            partner=delivery.partner, method=delivery.method, query_string=delivery.query_string,
            body=bytes(delivery.body), content_type=delivery.content_type, remote_addr=delivery.remote_addr,
            user_agent=delivery.user_agent, headers=delivery.headers, received_at=delivery.received_at,
            source=delivery.source, implied_status=delivery.implied_status,
        )
