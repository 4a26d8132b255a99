"""Reusable widgets of the counter screens."""

from screens.widgets.charge_panel import BigAmount, ChargePanel
from screens.widgets.key_bar import KeyBar
from screens.widgets.keypad import KeyPressed, NumericKeypad
from screens.widgets.pin_pad import PinPad
from screens.widgets.plain import Plain, plain_label
from screens.widgets.pos_input import PosInput
from screens.widgets.receipt_view import ReceiptView
from screens.widgets.status_bar import StatusBar
from screens.widgets.token_display import TokenDisplay, big_digits

__all__ = [
    "BigAmount",
    "ChargePanel",
    "KeyBar",
    "KeyPressed",
    "NumericKeypad",
    "PinPad",
    "Plain",
    "PosInput",
    "ReceiptView",
    "StatusBar",
    "TokenDisplay",
    "big_digits",
    "plain_label",
]
