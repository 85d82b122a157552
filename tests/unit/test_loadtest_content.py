"""What the generator sends: sizes, size distributions, envelope templates, message text."""

from __future__ import annotations

import statistics

import pytest

from loadtest.content import MessageFactory, SizeDist, Template, body, parse_size
from loadtest.errors import UsageError
from loadtest.sink import message_id


def _factory(
    size: str = "2048", rcpts: int = 1, to: str = "user{n}.{r}@example.org"
) -> MessageFactory:
    return MessageFactory(
        "run7",
        Template.parse("load{n}@mdai.gov.kz", "--from"),
        Template.parse(to, "--to"),
        rcpts,
        parse_size(size),
        seed=1,
    )


@pytest.mark.parametrize("size", [0, 1, 2, 3, 77, 78, 79, 80, 156, 157, 2048, 100_000])
def test_body_has_the_size_asked_give_or_take_one_byte(size: int) -> None:
    text = body(size)
    if size == 0:
        assert text == b""
        return
    assert len(text) == (size if size != 1 else 2)
    lines = text.split(b"\r\n")
    assert lines[-1] == b""  # CRLF-terminated
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    assert not any(line.startswith(b".") for line in lines)
    assert max(len(line) for line in lines) <= 77


def test_message_text_has_the_drawn_size_and_the_id_header() -> None:
    message = _factory().make(41, c=3)
    assert len(message.text) == 2048
    assert message.sender == "load41@mdai.gov.kz"
    assert message.rcpts == ("user41.0@example.org",)
    assert message.msg_id == "run7-41"
    assert message_id(message.text) == "run7-41"
    head = message.text.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nTo: <user41.0@example.org>\r\n" in head


def test_small_sizes_give_headers_only() -> None:
    message = _factory(size="10").make(1)
    assert message.text.endswith(b"\r\n\r\n")
    assert message_id(message.text) == "run7-1"


def test_recipients_follow_the_template() -> None:
    message = _factory(rcpts=3).make(5)
    assert message.rcpts == (
        "user5.0@example.org",
        "user5.1@example.org",
        "user5.2@example.org",
    )


def test_several_recipients_need_r_in_the_template() -> None:
    with pytest.raises(UsageError, match=r"needs \{r\}"):
        _factory(rcpts=2, to="user{n}@example.org")


def test_template_fields_and_format_specs() -> None:
    template = Template.parse("u{n:05d}-{c}-{run}@x.org", "--to")
    assert template.render(n=42, r=0, c=7, run="ab") == "u00042-7-ab@x.org"


@pytest.mark.parametrize(
    "text",
    ["user{m}@x.org", "user{n.real}@x.org", "user{n[0]}@x.org", "user{n!r}@x.org", "user{n}"],
)
def test_template_refuses_other_fields_and_addresses_without_domain(text: str) -> None:
    with pytest.raises(UsageError, match="template"):
        Template.parse(text, "--to")


def test_parse_size_forms() -> None:
    assert parse_size("2048") == SizeDist("fixed", 2048)
    assert parse_size("fixed:512") == SizeDist("fixed", 512)
    assert parse_size("lognormal:4000:0.5") == SizeDist("lognormal", 4000, 0.5)
    assert parse_size("uniform:100:200") == SizeDist("uniform", 100, 200)


@pytest.mark.parametrize(
    "text", ["", "big", "-5", "lognormal:4000", "lognormal:0:1", "uniform:9:3", "pareto:1:2"]
)
def test_parse_size_refuses_bad_specs(text: str) -> None:
    with pytest.raises(UsageError, match="bad size"):
        parse_size(text)


def test_lognormal_sizes_have_the_mean_asked() -> None:
    factory = _factory(size="lognormal:4000:0.5")
    sizes = [len(factory.make(n).text) for n in range(4000)]
    assert statistics.mean(sizes) == pytest.approx(4000, rel=0.05)
    assert len(set(sizes)) > 1000  # spread out, not one size


def test_uniform_sizes_stay_within_bounds() -> None:
    factory = _factory(size="uniform:3000:5000")
    sizes = [len(factory.make(n).text) for n in range(500)]
    assert min(sizes) >= 3000 and max(sizes) <= 5001
    assert max(sizes) - min(sizes) > 1500


def test_the_same_seed_draws_the_same_sizes() -> None:
    first, second = _factory("lognormal:3000:1"), _factory("lognormal:3000:1")
    assert [len(first.make(n).text) for n in range(50)] == [
        len(second.make(n).text) for n in range(50)
    ]
