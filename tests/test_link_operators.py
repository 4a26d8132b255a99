from pos.link import Link, LinkMonitor
from pos.operators import hash_pin, validate_operator_pin, verify_pin


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_link_goes_offline_fast_and_probes_with_backoff() -> None:
    clock = FakeClock()
    link = Link("PawaCard", probe_base=5, probe_max=40, clock=clock)
    assert link.should_try()
    link.record_failure("connect refused")
    assert not link.online and not link.should_try()
    clock.t += 5
    assert link.should_try()  # probe due
    link.record_failure("still down")
    clock.t += 5
    assert not link.should_try()  # backoff doubled to 10 s
    clock.t += 5
    assert link.should_try()
    for _ in range(10):
        link.record_failure("down")
    assert link.seconds_to_probe() <= 40
    link.record_success()
    assert link.online and link.should_try() and link.failures == 0


def test_monitor_describes_which_provider_is_down() -> None:
    m = LinkMonitor()
    assert m.online and m.describe() == "online"
    m.pawacard.record_failure("x")
    assert not m.online and m.describe() == "offline: PawaCard"


def test_operator_pins_are_hashed_with_scrypt() -> None:
    stored = hash_pin("4455")
    assert stored.startswith("scrypt$") and "4455" not in stored
    assert verify_pin("4455", stored)
    assert not verify_pin("4456", stored)
    assert not verify_pin("4455", "garbage")
    assert hash_pin("4455") != stored  # salted
    assert validate_operator_pin("123456") == "123456"


def test_probe_now_skips_the_back_off() -> None:
    clock = FakeClock()
    m = LinkMonitor(pawacard=Link("PawaCard", clock=clock))
    m.pawacard.record_failure("down")
    assert not m.pawacard.should_try()
    m.probe_now()
    assert m.pawacard.should_try()
