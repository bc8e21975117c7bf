"""The one table of finishers (step 3) and repeaters (recovery's repeat of a call the PSP
never received), per operation. The request path, recovery, the customer's 3-D Secure
return and PSP webhooks all record outcomes through ``saga.finish``, which looks here."""

from __future__ import annotations

from kassa.domain.payments import Operation
from kassa.services import cancel, capture, confirm, refunds
from kassa.services.saga import Finisher, Repeater

FINISHERS: dict[Operation, Finisher] = {
    Operation.AUTHORIZE: confirm.finish_authorization,
    Operation.CAPTURE: capture.finish_capture,
    Operation.VOID: cancel.finish_void,
    Operation.REFUND: refunds.finish_refund,
}
REPEATERS: dict[Operation, Repeater] = {
    Operation.AUTHORIZE: confirm.repeat,
    Operation.CAPTURE: capture.repeat,
    Operation.VOID: cancel.repeat,
    Operation.REFUND: refunds.repeat,
}
