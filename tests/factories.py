"""Small builders shared by the tests."""

from urllib.parse import urlencode

from orders.ingest import RawRequest

CLASSIC = {"click_id": "123", "order_number": "ORDER-001", "uniq_id": "EPN-12345", "order_status": "waiting",
           "revenue": "1500", "commission_fee": "100"}


def postback(**changes) -> dict:
    params = {**CLASSIC, **changes}
    return {k: v for k, v in params.items() if v is not None}


def raw_get(**changes) -> RawRequest:
    return RawRequest(partner="epn_bz", method="GET", query_string=urlencode(postback(**changes)))
