"""`sinks:` in customer files: validated with file, line and field; secrets only as files."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.customers import load_customer_text
from collector.sinks.config import EmailSinkConfig, WebhookSinkConfig
from probes.configfile import ConfigError

HEAD = "customer: acme\nname: ACME\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_customer_text(HEAD + text, Path("/etc/daybreak/customers/acme.yaml"))
    return [str(problem) for problem in raised.value.problems]


def test_every_type_loads_and_relative_secret_files_sit_beside_the_customer_file() -> None:
    customer = load_customer_text(HEAD + """\
sinks:
  - {type: webhook, name: hook, url: "https://desk.example/hook", secret_file: keys/hook.key}
  - type: email
    name: mail
    host: smtp.example
    port: 587
    starttls: true
    username: daybreak
    password_file: /run/secrets/smtp
    from_address: daybreak@collector.example
    to: [desk@acme.example, oncall@acme.example]
  - {type: pagerduty, name: pager, routing_key_file: pd.key, events: [opened, resolved]}
  - {type: rest_ticket, name: tickets, base_url: "https://tickets.example/api"}
""", Path("/etc/daybreak/customers/acme.yaml"))
    hook, mail, pager, tickets = customer.sinks
    assert isinstance(hook, WebhookSinkConfig)
    assert hook.secret_file == Path("/etc/daybreak/customers/keys/hook.key")
    assert isinstance(mail, EmailSinkConfig)
    assert mail.domain == "collector.example"
    assert pager.type == "pagerduty"
    assert pager.events == ("opened", "resolved")
    assert tickets.type == "rest_ticket"


def test_a_secret_written_into_the_yaml_is_refused_with_its_line() -> None:
    found = problems("""\
sinks:
  - type: webhook
    name: hook
    url: https://desk.example/hook
    secret: s3cr3t
""")
    assert found == [
        "/etc/daybreak/customers/acme.yaml:4: sinks[0].webhook.secret_file: Field required",
        "/etc/daybreak/customers/acme.yaml:7: sinks[0].secret: Extra inputs are not permitted",
    ]


def test_an_unknown_type_names_the_known_ones() -> None:
    (found,) = problems("sinks:\n  - {type: slack, name: chat}\n")
    assert "acme.yaml:4: sinks[0]" in found
    for known in ("webhook", "email", "pagerduty", "rest_ticket"):
        assert known in found


def test_two_sinks_with_one_name_are_refused() -> None:
    (found,) = problems("""\
sinks:
  - {type: rest_ticket, name: desk, base_url: "https://a.example"}
  - {type: rest_ticket, name: desk, base_url: "https://b.example"}
""")
    assert "two sinks are named 'desk'" in found


@pytest.mark.parametrize(("sink", "message"), [
    ('{type: webhook, name: h, url: "ftp://x", secret_file: k}', "must start with https://"),
    ('{type: email, name: m, host: h, from_address: "not-an-address", to: [a@b.example]}',
     "is not an e-mail address"),
    ("{type: email, name: m, host: h, from_address: a@b.example, to: []}", "at least 1"),
    ("{type: email, name: m, host: h, from_address: a@b.example, to: [a@b.example], "
     "password_file: p}", "needs a username"),
    ("{type: rest_ticket, name: t, base_url: 'https://x', timeout_s: 0}", "greater than 0"),
    ("{type: rest_ticket, name: t, base_url: 'https://x', events: []}", "at least one event"),
    ("{type: rest_ticket, name: t, base_url: 'https://x', events: [repeated]}", "opened"),
])
def test_bad_values_are_reported_on_the_sinks_line(sink: str, message: str) -> None:
    found = problems(f"sinks:\n  - {sink}\n")
    assert any(message in problem for problem in found), found
    assert all("acme.yaml:4:" in problem for problem in found), found


def test_the_example_in_docs_sinks_md_is_a_valid_customer_file() -> None:
    docs = Path(__file__).resolve().parents[3] / "docs" / "sinks.md"
    example = docs.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    customer = load_customer_text(HEAD + example, Path("/etc/daybreak/customers/acme.yaml"))
    assert [sink.type for sink in customer.sinks] == ["webhook", "email", "pagerduty",
                                                      "rest_ticket"]
