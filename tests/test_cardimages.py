from pathlib import Path

import numpy as np
import zxingcpp

from hardware.cardimages import QUIET_ZONE, make_cards, qr_matrix, render_card, render_qr

QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
PAYLOAD = "1613*****65219&11/35&UGX&0&Debit Card&108"


def _read(img: object) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(img, formats=QR)


def test_qr_has_four_module_quiet_zone() -> None:
    m = np.array(qr_matrix(PAYLOAD))
    q = QUIET_ZONE
    assert not m[:q].any() and not m[-q:].any() and not m[:, :q].any() and not m[:, -q:].any()
    # ...and the symbol starts right after it (the finder pattern's corner is dark).
    assert m[q, q] and m[q, -q - 1] and m[-q - 1, q]


def test_qr_reads_back_with_error_correction_h() -> None:
    (r,) = _read(render_qr(PAYLOAD, module_px=4))
    assert r.text == PAYLOAD
    assert r.ec_level == "H"


def test_card_image_reads_back() -> None:
    card = render_card(PAYLOAD, height_px=400)
    assert abs(card.width / card.height - 85.6 / 54) < 0.01
    assert [r.text for r in _read(card)] == [PAYLOAD]


def test_make_cards_writes_one_png_per_payload(tmp_path: Path) -> None:
    other = "4000*****12345&01/30&UGX&3&Gift Card&77"
    paths = make_cards(tmp_path / "out", [PAYLOAD, other, PAYLOAD, "not a card"])
    assert len(paths) == 4 and len(set(paths)) == 4
    assert all(p.is_file() and p.suffix == ".png" for p in paths)
    assert paths[0].name == "card-108-5219.png"
    from PIL import Image

    texts = [[r.text for r in _read(Image.open(p))] for p in paths]
    assert texts == [[PAYLOAD], [other], [PAYLOAD], ["not a card"]]


def test_qr_only_cards(tmp_path: Path) -> None:
    (p,) = make_cards(tmp_path, [PAYLOAD], qr_only=True)
    from PIL import Image

    img = Image.open(p)
    assert img.width == img.height
    assert [r.text for r in _read(img)] == [PAYLOAD]
