"""Demo data of the provider sandbox: credentials, cards, meters, accounts.

Other code (tests, the demo, the CLI's ``sandbox`` command) imports these
constants; the sandbox state is built from them on every reset.
"""

from __future__ import annotations

from dataclasses import dataclass

from pos.cardqr import make_payload

# ------------------------------------------------------------------ Patasente
MERCHANT_NAME = "Sente Demo Shop"
MERCHANT_CODE = "M000001"
MERCHANT_EMAIL = "shop@sente.demo"
MERCHANT_PHONE = "256700000001"
MERCHANT_PASSWORD = "demo1234"
MERCHANT_COMPANY_ID = 6
MERCHANT_ACCOUNT_NO = "PATA20183"
#: Merchant Current Account (wallet) balance; fractional like the document's example.
MERCHANT_WALLET = "474561.0023449999"
#: Merchant prepaid (card) float in UGX; card credits draw on it.
MERCHANT_PREPAID_FLOAT = 500_000
MERCHANT_RESELLER_FLOAT = 60_000
MERCHANT_CREDIT_BALANCE = 150_000

#: The 4-digit code "sent by SMS" when a Sente card is activated (KYC).
SMS_CODE = "4321"
#: Consecutive wrong PINs after which a card is locked.
MAX_WRONG_PINS = 3

CURRENT = "Current Account"
CREDIT = "Credit Account"


@dataclass(frozen=True, slots=True)
class DemoCard:
    """A card the sandbox knows, with everything a test or a demo needs to use it."""

    name: str  # the constant's name, e.g. "CARD_ACTIVE"
    id: int
    card_no: str  # masked, as printed on the card and in its QR code
    card_type: str
    expiry: str  # MM/YY
    pin: str | None
    role: str
    status: str = "active"  # active | inactive | locked
    wallets: tuple[str, ...] = (CURRENT,)
    balance: int = 0  # Current Account, UGX
    credit_limit: int = 0
    available_credit: int = 0
    face_value: int = 0  # most that may sit on the card (``amount`` in get-issued)
    holder: str | None = None
    phone: str | None = None
    currency: str = "UGX"
    digit: int = 0
    sente: bool = False  # a Sente card (KYC activation, lock / unlock)

    @property
    def payload(self) -> str:
        """The text of the card's QR code."""
        return make_payload(self.card_no, self.expiry, self.currency, self.digit,
                            self.card_type, self.id)

    @property
    def has_pin(self) -> bool:
        return self.pin is not None


CARD_ACTIVE = DemoCard(
    name="CARD_ACTIVE", id=108, card_no="1613*****65219", card_type="Debit Card",
    expiry="11/29", pin="1234", sente=True, holder="Ivan Yiga", phone="256783159235",
    wallets=(CURRENT, CREDIT), balance=150_000, credit_limit=100_000,
    available_credit=60_000, face_value=2_000_000,
    role="Sente debit card, PIN 1234: Current Account 150,000 + Credit Account "
         "(limit 100,000, available 60,000)",
)
CARD_NO_PIN = DemoCard(
    name="CARD_NO_PIN", id=109, card_no="1663********13455034", card_type="Shopping Card",
    expiry="09/29", pin=None, balance=20_000, face_value=50_000,
    role="active card without a PIN, balance 20,000 (face value 50,000)",
)
CARD_GIFT_INACTIVE = DemoCard(
    name="CARD_GIFT_INACTIVE", id=110, card_no="1663********23892955", card_type="Gift Card",
    expiry="10/29", pin=None, status="inactive", balance=50_000, face_value=50_000,
    role="gift card not yet activated (no PIN), face value 50,000: activate it with a PIN",
)
CARD_LOCKED = DemoCard(
    name="CARD_LOCKED", id=111, card_no="1613*****32177", card_type="Debit Card",
    expiry="04/30", pin="5678", status="locked", sente=True, holder="Sarah Nakato",
    phone="256772000111", balance=80_000, face_value=2_000_000,
    role="Sente debit card, locked (PIN 5678, balance 80,000): unlock it to use it",
)
CARD_EXPIRED = DemoCard(
    name="CARD_EXPIRED", id=112, card_no="1663********46561440", card_type="Gift Card",
    expiry="09/21", pin="2468", balance=30_000, face_value=50_000,
    role="gift card that expired at the end of 09/21 (PIN 2468, balance 30,000)",
)
CARD_CREDIT = DemoCard(
    name="CARD_CREDIT", id=113, card_no="1616*****52241141888", card_type="Credit Card",
    expiry="04/31", pin="1357", sente=True, holder="Brian Ssekalegga", phone="256704255401",
    wallets=(CREDIT,), credit_limit=200_000, available_credit=80_000, face_value=0,
    role="Sente credit card, PIN 1357: Credit Account only (limit 200,000, available 80,000)",
)
CARD_SENTE_NEW = DemoCard(
    name="CARD_SENTE_NEW", id=114, card_no="1613*****40021", card_type="Sente Card",
    expiry="12/30", pin=None, status="inactive", sente=True, face_value=2_000_000,
    role="Sente card not yet activated: register the holder (KYC), SMS code "
         f"{SMS_CODE}",
)
CARD_LOW = DemoCard(
    name="CARD_LOW", id=115, card_no="1663********77120045", card_type="Gift Card",
    expiry="06/29", pin="0000", balance=500, face_value=5_000,
    role="gift card, PIN 0000, balance 500 of face value 5,000 (insufficient funds; top-up)",
)

DEMO_CARDS: tuple[DemoCard, ...] = (
    CARD_ACTIVE, CARD_NO_PIN, CARD_GIFT_INACTIVE, CARD_LOCKED, CARD_EXPIRED, CARD_CREDIT,
    CARD_SENTE_NEW, CARD_LOW,
)
CARDS_BY_ID: dict[int, DemoCard] = {c.id: c for c in DEMO_CARDS}

#: Products of ``get-company-products``: (id, name, unit price UGX, units).
PRODUCTS: tuple[tuple[int, str, int, str], ...] = (
    (18, "Sugar 1kg", 4_500, "Pieces"),
    (19, "Milk 500ml", 1_500, "Pieces"),
    (20, "Bread (large)", 6_000, "Pieces"),
    (21, "Airtime voucher", 5_000, "Units"),
)

#: Exchange rates of ``convert-currency``: UGX per unit of the currency.
UGX_PER_UNIT: dict[str, str] = {"UGX": "1", "USD": "3690", "EUR": "4000", "GBP": "4700",
                                "KES": "28.5", "TZS": "1.4", "RWF": "2.8"}

# ------------------------------------------------------------------- PawaCard
VENDOR_USERNAME = "testvendor"
VENDOR_PASSWORD = "demo1234"
#: Vendor float in KES (whole shillings); each vend / bill draws on it.
VENDOR_FLOAT = 500_000
#: Price of a kWh in KES, for the ``units`` of a token.
KWH_PRICE = "24.50"

#: Luhn-valid meters with a scripted behaviour. Any other Luhn-valid meter vends.
METER_OK = "01451174955"  # verifies as "Bilbo Baggins", vends
METER_PENDING = "01451175002"  # vend pending for 2 status polls, then complete
METER_FAIL = "01451175010"  # vend fails: elec001
METER_FAIL_KPLC = "01451175028"  # vend fails on the way to Kenya Power: elec003
METER_UNKNOWN = "01451175036"  # verify: not registered at Kenya Power (elec100)
METER_DAILY_LIMIT = "01451175044"  # always status 105 (maximum vends per day)
METER_TIMEOUT = "01451175051"  # verify always times out (elec100, "fetch again")
METER_BAD_LUHN = "12345678912"  # fails the Luhn check (the document's example)

METER_NAMES: dict[str, str] = {
    METER_OK: "Bilbo Baggins",
    METER_PENDING: "Frodo Baggins",
    METER_FAIL: "Samwise Gamgee",
    METER_FAIL_KPLC: "Meriadoc Brandybuck",
    METER_DAILY_LIMIT: "Peregrin Took",
    METER_TIMEOUT: "Rosie Cotton",
}
METER_PENDING_POLLS = 2

ACCOUNT_OK = "0203754-01"  # "Bilbo Baggins", balance "10", bill succeeds
ACCOUNT_PENDING = "0203755-01"  # bill pending for 2 status polls, then complete
ACCOUNT_FAIL = "0203756-01"  # bill fails (transaction status 2)
ACCOUNT_UNREACHABLE = "0203757-01"  # verify answers "Connection error"

ACCOUNTS: dict[str, tuple[str, str]] = {  # account -> (customer name, balance KES)
    ACCOUNT_OK: ("Bilbo Baggins", "10"),
    ACCOUNT_PENDING: ("Frodo Baggins", "2500"),
    ACCOUNT_FAIL: ("Samwise Gamgee", "730"),
}

#: Names given to meters and accounts the sandbox has no script for.
OTHER_NAMES: tuple[str, ...] = (
    "Wanjiku Kamau", "Otieno Odhiambo", "Akinyi Achieng", "Mwangi Njoroge", "Chebet Kiprop",
    "Mutua Musyoka", "Njeri Wambui", "Kipchoge Keino",
)

METER_ROLES: tuple[tuple[str, str], ...] = (
    ("METER_OK", f"{METER_OK}: Bilbo Baggins, vends a token"),
    ("METER_PENDING", f"{METER_PENDING}: vend pending for {METER_PENDING_POLLS} polls, "
                      "then complete"),
    ("METER_FAIL", f"{METER_FAIL}: vend fails (elec001)"),
    ("METER_FAIL_KPLC", f"{METER_FAIL_KPLC}: vend fails on the way to Kenya Power (elec003)"),
    ("METER_UNKNOWN", f"{METER_UNKNOWN}: not registered at Kenya Power"),
    ("METER_DAILY_LIMIT", f"{METER_DAILY_LIMIT}: maximum vends per day reached (105)"),
    ("METER_TIMEOUT", f"{METER_TIMEOUT}: verify times out (elec100)"),
    ("METER_BAD_LUHN", f"{METER_BAD_LUHN}: fails the Luhn check"),
    ("ACCOUNT_OK", f"{ACCOUNT_OK}: Bilbo Baggins, balance 10, bill paid"),
    ("ACCOUNT_PENDING", f"{ACCOUNT_PENDING}: bill pending for {METER_PENDING_POLLS} polls"),
    ("ACCOUNT_FAIL", f"{ACCOUNT_FAIL}: bill fails"),
    ("ACCOUNT_UNREACHABLE", f"{ACCOUNT_UNREACHABLE}: verify answers 'Connection error'"),
)


def other_name(key: str) -> str:
    """A stable made-up customer name for a meter or account without a script."""
    return OTHER_NAMES[sum(map(ord, key)) % len(OTHER_NAMES)]
