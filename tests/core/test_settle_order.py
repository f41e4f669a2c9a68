"""The trigger phase sends every request before any driver's spare-time work: trigger, hand
state request, then each driver's settle() (the clock fits), once per cycle."""

from __future__ import annotations

events: list[tuple[str, int]] = []


def test_every_request_leaves_before_any_settle(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, parts = make_loop(duration_s=0.1)
    trigger, hand = parts["trigger"], parts["hand"]
    seen: list[str] = []
    fire, request = trigger.fire, hand.request_state

    def fire_logged(k: int) -> int:
        seen.append("fire")
        return fire(k)

    def request_logged(k: int) -> None:
        seen.append("request")
        request(k)

    trigger.fire = fire_logged
    hand.request_state = request_logged
    trigger.settle = lambda: seen.append("settle trigger")
    hand.settle = lambda: seen.append("settle hand")
    res = loop.run()
    assert res.cycles == 10
    assert seen == ["fire", "request", "settle trigger", "settle hand"] * res.cycles
