"""Networks configured as staff would in the admin, built in memory from a Network row (unsaved): what the
contract, the fuzz and the configured parser's tests run against, beside the built-in partners.

ActionPay (see its public postback description) fires one URL per event, so its status is implied by
the URL's token; GdeSlon sends a status word, Unix times and, here, amounts with a decimal comma.
"""

from partners.base import OrderStatus
from partners.configured import ConfiguredPartner, DateFormat, MacroSyntax
from partners.models import Network


def actionpay_row(**changes) -> Network:
    values = {
        "slug": "actionpay", "name": "ActionPay", "uniq_id_parameter": "uniqueid", "click_id_parameter": "subaccount",
        "commission_fee_parameter": "payment", "offer_id_parameter": "offer", "time_of_order_parameter": "time",
        "timezone": "Europe/Moscow", "date_format": DateFormat.ANY, "default_currency": "RUB",
        "macro": MacroSyntax.BRACES,
    }
    return Network(**{**values, **changes})


def gdeslon_row(**changes) -> Network:
    values = {
        "slug": "gdeslon", "name": "GdeSlon", "uniq_id_parameter": "order_id", "order_number_parameter": "order_id",
        "click_id_parameter": "sub_id", "status_parameter": "status", "revenue_parameter": "order_sum",
        "commission_fee_parameter": "profit", "time_of_order_parameter": "action_time", "ip_parameter": "ip",
        "currency_parameter": "currency", "waiting_words": "created", "pending_words": "pending",
        "completed_words": "confirmed, payed", "rejected_words": "cancelled", "timezone": "UTC",
        "date_format": DateFormat.UNIX, "decimal_separator": ",", "default_currency": "RUB",
        "macro": MacroSyntax.DOUBLE_BRACES,
    }
    return Network(**{**values, **changes})


def actionpay(status: str = OrderStatus.WAITING) -> ConfiguredPartner:
    """ActionPay's parser as it reads a postback to the URL of its token for `status`."""
    return ConfiguredPartner(actionpay_row().config()).implying(status)


def gdeslon() -> ConfiguredPartner:
    return ConfiguredPartner(gdeslon_row().config())


# Configured partners under the same contract and fuzz as the built-in ones.
CONFIGURED_UNDER_CONTRACT = (actionpay(OrderStatus.COMPLETED), gdeslon())
