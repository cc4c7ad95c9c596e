"""The Jinja macros make GOV.UK Frontend's markup, escaped, with errors linked to fields."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from markupsafe import Markup

from exchange.web.app import template_environment
from tests.web.pages import parse

HOSTILE = '<script>alert("x")</script>'


def _render(call: str, **values: Any) -> str:
    """Render one macro call from components.html with ``values`` in scope."""
    source = '{% import "components.html" as c %}' + call
    page = {"csrf_token": "t0ken", **values}
    return template_environment().from_string(source).render(page)


def test_text_input_links_its_label_hint_and_error() -> None:
    """A text input with a hint and an error is labelled and described by both."""
    html = _render(
        '{{ c.text_input("email", "Email address", hint="Your work email",'
        ' error="Enter an email address") }}'
    )
    page = parse(html)
    (field,) = page.all("input")
    assert page.all("label")[0].attrs["for"] == "email"
    assert field.attrs["aria-describedby"] == "email-hint email-error"
    assert "govuk-input--error" in (field.attrs["class"] or "")
    assert "Error:" in html


def test_text_input_escapes_its_value() -> None:
    """A value with markup in it reaches the page as text."""
    html = _render('{{ c.text_input("name", "Name", value=v) }}', v=HOSTILE)
    assert "<script>" not in html
    assert parse(html).all("input")[0].attrs["value"] == HOSTILE


def test_password_input_has_no_value_and_a_hidden_toggle() -> None:
    """The password input never carries a value; its show button waits for the script."""
    page = parse(_render('{{ c.password_input("password", "Password") }}'))
    (field,) = page.all("input")
    assert field.attrs["type"] == "password"
    assert "value" not in field.attrs
    assert "hidden" in page.all("button")[0].attrs


def test_error_summary_links_to_each_field() -> None:
    """Each error in the summary is a link to the field it is about."""
    errors = [{"href": "#email", "text": "Enter an email address"}]
    page = parse(_render("{{ c.error_summary(errors) }}", errors=errors))
    assert [a.attrs["href"] for a in page.all("a")] == ["#email"]
    assert page.all("div")[1].attrs["role"] == "alert"


def test_error_summary_without_errors_is_empty() -> None:
    """With no errors the summary makes nothing."""
    assert _render("{{ c.error_summary([]) }}").strip() == ""


def test_csrf_field_carries_the_token() -> None:
    """The hidden CSRF field holds the page's token."""
    (field,) = parse(_render("{{ c.csrf_field(csrf_token) }}")).all("input")
    assert field.attrs == {"type": "hidden", "name": "csrf_token", "value": "t0ken"}


def test_button_prevents_a_double_click() -> None:
    """A form's main button asks GOV.UK Frontend to ignore a second click."""
    (button,) = parse(_render('{{ c.button("Send") }}')).all("button")
    assert button.attrs["data-prevent-double-click"] == "true"
    assert button.text.strip() == "Send"


def test_summary_list_escapes_values_and_keeps_markup() -> None:
    """Plain values are escaped; values passed as Markup are kept."""
    rows = [
        {"key": "Name", "value": HOSTILE},
        {"key": "Status", "html": Markup('<strong class="govuk-tag">Sent</strong>')},
    ]
    html = _render("{{ c.summary_list(rows) }}", rows=rows)
    assert "<script>" not in html
    assert '<strong class="govuk-tag">Sent</strong>' in html


def test_summary_list_action_has_hidden_context() -> None:
    """A row's change link says, to screen readers, what it changes."""
    rows = [
        {
            "key": "Email",
            "value": "a@b",
            "action": {"href": "#e", "text": "Change", "hidden": "email"},
        }
    ]
    page = parse(_render("{{ c.summary_list(rows) }}", rows=rows))
    assert " ".join(page.all("a")[0].text.split()) == "Change email"


def test_table_has_headings_and_cells() -> None:
    """A table has a header row and one row per item, escaped."""
    page = parse(_render('{{ c.table(["Sent to", "Status"], [["A", v]]) }}', v=HOSTILE))
    assert [th.text for th in page.all("th")] == ["Sent to", "Status"]
    assert page.all("td")[1].text == HOSTILE


def test_tag_names_its_colour() -> None:
    """A coloured tag carries the colour's modifier class."""
    (tag,) = parse(_render('{{ c.tag("Overdue", "red") }}')).all("strong")
    assert tag.attrs["class"] == "govuk-tag govuk-tag--red"


def test_panel_title_is_the_page_heading() -> None:
    """The confirmation panel's title is an h1."""
    page = parse(_render('{{ c.panel("Record sent") }}'))
    assert [h.text for h in page.all("h1")] == ["Record sent"]


def test_success_banner_is_an_alert() -> None:
    """A success notification banner is announced as an alert."""
    page = parse(_render('{{ c.notification_banner("Done", success=true) }}'))
    assert page.all("div")[0].attrs["role"] == "alert"


def test_back_link_goes_where_it_is_told() -> None:
    """The back link points at the given page."""
    (link,) = parse(_render('{{ c.back_link("/inbox") }}')).all("a")
    assert (link.attrs["href"], link.text) == ("/inbox", "Back")


def test_an_undefined_name_is_an_error() -> None:
    """A misspelt name in a template raises instead of rendering as nothing."""
    with pytest.raises(jinja2.UndefinedError):
        template_environment().from_string("{{ no_such_name }}").render()
