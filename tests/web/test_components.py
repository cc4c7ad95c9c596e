"""The Jinja macros make GOV.UK Frontend's markup, escaped, with errors linked to fields."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from markupsafe import Markup

from exchange.web.app import template_environment
from tests.web.pages import Element, parse

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


# --- the form components: ids, aria-describedby with the hint and the error, error states --


def _by_id(html: str) -> dict[str, Element]:
    """Return every element of the rendered markup that has an id, by its id."""
    return {str(e.attrs["id"]): e for e in parse(html).elements if e.attrs.get("id")}


def _classes(element: Element) -> list[str]:
    return str(element.attrs.get("class") or "").split()


ITEMS = [
    {"value": "a", "text": "Apple", "hint": "A fruit"},
    {"value": "b", "text": "Bread"},
]


def test_error_message_has_its_id_and_a_hidden_prefix() -> None:
    """An error message is found by its id and read out as an error."""
    html = _render('{{ c.error_message("name-error", v) }}', v=HOSTILE)
    (p,) = parse(html).all("p")
    assert (p.attrs["id"], p.attrs["class"]) == ("name-error", "govuk-error-message")
    assert " ".join(p.text.split()) == "Error: " + HOSTILE
    assert "<script>" not in html


def test_text_input_as_the_page_heading_with_classes() -> None:
    """A text input's label can be the page's h1; classes widen the input."""
    html = _render(
        '{{ c.text_input("code", "Code", classes="govuk-input--width-10", is_page_heading=true) }}'
    )
    page = parse(html)
    assert page.all("h1")[0].attrs["class"] == "govuk-label-wrapper"
    assert _classes(page.all("label")[0]) == ["govuk-label", "govuk-label--l"]
    assert _classes(page.all("input")[0]) == ["govuk-input", "govuk-input--width-10"]
    assert "aria-describedby" not in page.all("input")[0].attrs


def test_password_input_is_described_by_its_hint_and_error() -> None:
    """A password input with a hint and an error is described by both, and in error."""
    html = _render('{{ c.password_input("pw", "Password", hint="8 or more", error="Enter it") }}')
    ids = _by_id(html)
    assert ids["pw"].attrs["aria-describedby"] == "pw-hint pw-error"
    assert "govuk-input--error" in _classes(ids["pw"])
    assert "govuk-form-group--error" in _classes(parse(html).all("div")[0])


def test_radios_ids_labels_and_item_hints() -> None:
    """The first radio takes the name as its id (the error summary's link), the rest -2, -3."""
    html = _render('{{ c.radios("fruit", "Which?", items) }}', items=ITEMS)
    page = parse(html)
    radios = page.all("input")
    assert [r.attrs["id"] for r in radios] == ["fruit", "fruit-2"]
    assert {r.attrs["type"] for r in radios} == {"radio"}
    assert [lab.attrs["for"] for lab in page.all("label")] == ["fruit", "fruit-2"]
    assert radios[0].attrs["aria-describedby"] == "fruit-item-hint"
    assert "aria-describedby" not in radios[1].attrs
    hint = _by_id(html)["fruit-item-hint"]
    assert _classes(hint) == ["govuk-hint", "govuk-radios__hint"]
    (group,) = [d for d in page.all("div") if "govuk-radios" in _classes(d)]
    assert group.attrs["data-module"] == "govuk-radios"
    (legend,) = page.all("legend")
    assert _classes(legend) == ["govuk-fieldset__legend", "govuk-fieldset__legend--m"]
    assert "aria-describedby" not in page.all("fieldset")[0].attrs
    assert not any("checked" in r.attrs for r in radios)


def test_radios_with_hint_and_error() -> None:
    """The fieldset is described by the hint and the error; the form group is in error."""
    html = _render(
        '{{ c.radios("fruit", "Which?", items, hint="Pick one", error=v) }}',
        items=ITEMS,
        v=HOSTILE,
    )
    page = parse(html)
    assert page.all("fieldset")[0].attrs["aria-describedby"] == "fruit-hint fruit-error"
    ids = _by_id(html)
    assert ids["fruit-hint"].text == "Pick one"
    assert ids["fruit-error"].attrs["class"] == "govuk-error-message"
    assert "govuk-form-group--error" in _classes(page.all("div")[0])
    assert "<script>" not in html


def test_radios_checked_by_value_or_by_item() -> None:
    """An item is checked by its own "checked", else by matching the value."""
    by_value = parse(_render('{{ c.radios("f", "L", items, value="b") }}', items=ITEMS))
    assert ["checked" in r.attrs for r in by_value.all("input")] == [False, True]
    items = [{"value": "a", "text": "A", "checked": True}, {"value": "b", "text": "B"}]
    by_item = parse(_render('{{ c.radios("f", "L", items, value="b") }}', items=items))
    assert ["checked" in r.attrs for r in by_item.all("input")] == [True, True]
    empty = [{"value": "", "text": "Any"}, {"value": "x", "text": "X"}]
    by_empty = parse(_render('{{ c.radios("f", "L", items, value="") }}', items=empty))
    assert ["checked" in r.attrs for r in by_empty.all("input")] == [True, False]


def test_radios_id_prefix_classes_and_page_heading() -> None:
    """id_prefix names the ids, classes go on the radios, the legend can hold the h1."""
    html = _render(
        '{{ c.radios("kind", "What?", items, id_prefix="f-kind", hint="H", error="E",'
        ' classes="govuk-radios--inline", legend_classes="govuk-fieldset__legend--l",'
        " is_page_heading=true) }}",
        items=ITEMS,
    )
    page = parse(html)
    assert [r.attrs["id"] for r in page.all("input")] == ["f-kind", "f-kind-2"]
    assert [r.attrs["name"] for r in page.all("input")] == ["kind", "kind"]
    assert page.all("fieldset")[0].attrs["aria-describedby"] == "f-kind-hint f-kind-error"
    (group,) = [d for d in page.all("div") if "govuk-radios" in _classes(d)]
    assert _classes(group) == ["govuk-radios", "govuk-radios--inline"]
    (h1,) = page.all("h1")
    assert (h1.attrs["class"], h1.text) == ("govuk-fieldset__heading", "What?")
    assert "govuk-fieldset__legend--l" in _classes(page.all("legend")[0])


def test_checkboxes_ids_values_hints_and_error() -> None:
    """Checkboxes: ids as radios have, checked by values, described by hint and error."""
    html = _render(
        '{{ c.checkboxes("food", "Which?", items, values=["a", "b"], hint="All that apply",'
        ' error="Select one", id_prefix="f-food") }}',
        items=ITEMS,
    )
    page = parse(html)
    boxes = page.all("input")
    assert [b.attrs["id"] for b in boxes] == ["f-food", "f-food-2"]
    assert {b.attrs["type"] for b in boxes} == {"checkbox"}
    assert all("checked" in b.attrs for b in boxes)
    assert boxes[0].attrs["aria-describedby"] == "f-food-item-hint"
    assert _classes(_by_id(html)["f-food-item-hint"]) == ["govuk-hint", "govuk-checkboxes__hint"]
    assert page.all("fieldset")[0].attrs["aria-describedby"] == "f-food-hint f-food-error"
    (group,) = [d for d in page.all("div") if "govuk-checkboxes" in _classes(d)]
    assert group.attrs["data-module"] == "govuk-checkboxes"
    assert _classes(page.all("label")[0]) == ["govuk-label", "govuk-checkboxes__label"]
    assert "govuk-form-group--error" in _classes(page.all("div")[0])


def test_checkboxes_checked_by_item() -> None:
    """A checkbox item's own "checked" decides."""
    items = [
        {"value": "a", "text": "A", "checked": False},
        {"value": "b", "text": "B", "checked": True},
    ]
    page = parse(_render('{{ c.checkboxes("f", "L", items, values=["a"]) }}', items=items))
    assert ["checked" in b.attrs for b in page.all("input")] == [False, True]


def test_fieldset_wraps_what_the_caller_makes() -> None:
    """The fieldset macro's caller makes its inside; a date's has role=group."""
    html = _render(
        '{% call c.fieldset("g", "Group", hint="H", role="group", form_group_id="g") %}'
        '<p id="inside">x</p>{% endcall %}'
    )
    ids = _by_id(html)
    assert "inside" in ids
    assert ids["g"].tag == "div"
    (fieldset,) = parse(html).all("fieldset")
    assert (fieldset.attrs["role"], fieldset.attrs["aria-describedby"]) == ("group", "g-hint")


def test_date_input_parts_ids_values_and_error() -> None:
    """A date is three numeric inputs, named and labelled, all in error with the date."""
    html = _render(
        '{{ c.date_input("from", "Start date", values={"day": "1", "month": "9"},'
        ' hint="For example, 1 9 2026", error="Enter a real date", id="f-from",'
        ' legend_classes="govuk-fieldset__legend--s") }}'
    )
    page = parse(html)
    inputs = page.all("input")
    assert [i.attrs["id"] for i in inputs] == ["f-from-day", "f-from-month", "f-from-year"]
    assert [i.attrs["name"] for i in inputs] == ["from-day", "from-month", "from-year"]
    assert [i.attrs.get("value") for i in inputs] == ["1", "9", None]
    assert {i.attrs["inputmode"] for i in inputs} == {"numeric"}
    assert [c for c in _classes(inputs[2]) if "width" in c] == ["govuk-input--width-4"]
    assert all("govuk-input--error" in _classes(i) for i in inputs)
    assert [lab.text for lab in page.all("label")] == ["Day", "Month", "Year"]
    (fieldset,) = page.all("fieldset")
    assert fieldset.attrs["role"] == "group"
    assert fieldset.attrs["aria-describedby"] == "f-from-hint f-from-error"
    assert _classes(_by_id(html)["f-from"]) == ["govuk-date-input"]
    assert "govuk-fieldset__legend--s" in _classes(page.all("legend")[0])


def test_select_options_selected_and_error() -> None:
    """A select: the option with the value (or marked selected) is selected; errors link."""
    items = [{"value": "", "text": "Choose"}, {"value": "x", "text": "X"}]
    html = _render(
        '{{ c.select("org", "Organisation", items, value="x", hint="H", error="E",'
        ' id="f-org", label_classes="govuk-label--m") }}',
        items=items,
    )
    page = parse(html)
    (select,) = page.all("select")
    assert (select.attrs["id"], select.attrs["name"]) == ("f-org", "org")
    assert select.attrs["aria-describedby"] == "f-org-hint f-org-error"
    assert _classes(select) == ["govuk-select", "govuk-select--error"]
    assert ["selected" in o.attrs for o in page.all("option")] == [False, True]
    assert _classes(page.all("label")[0]) == ["govuk-label", "govuk-label--m"]
    own = [{"value": "a", "text": "A", "selected": True}, {"value": "b", "text": "B"}]
    chosen = parse(_render('{{ c.select("s", "S", items) }}', items=own))
    assert ["selected" in o.attrs for o in chosen.all("option")] == [True, False]


def test_textarea_without_a_limit_is_a_plain_textarea() -> None:
    """Without max_length a textarea has no character count."""
    html = _render('{{ c.textarea("notes", "Notes", value=v, rows=3) }}', v=HOSTILE)
    page = parse(html)
    (area,) = page.all("textarea")
    assert _classes(area) == ["govuk-textarea"]
    assert (area.attrs["rows"], area.text) == ("3", HOSTILE)
    assert "data-module" not in page.all("div")[0].attrs
    assert "<script>" not in html


def test_textarea_with_a_character_count() -> None:
    """With max_length it is GOV.UK's character count: its message first in describedby."""
    html = _render(
        '{{ c.textarea("reason", "Why?", max_length=2000, hint="H", error="E", id="f-reason",'
        " is_page_heading=true) }}"
    )
    page = parse(html)
    group = page.all("div")[0]
    assert _classes(group) == [
        "govuk-form-group",
        "govuk-character-count",
        "govuk-form-group--error",
    ]
    assert (group.attrs["data-module"], group.attrs["data-maxlength"]) == (
        "govuk-character-count",
        "2000",
    )
    (area,) = page.all("textarea")
    assert area.attrs["aria-describedby"] == "f-reason-info f-reason-hint f-reason-error"
    assert _classes(area) == ["govuk-textarea", "govuk-js-character-count", "govuk-textarea--error"]
    info = _by_id(html)["f-reason-info"]
    assert _classes(info) == ["govuk-hint", "govuk-character-count__message"]
    assert info.text == "You can enter up to 2,000 characters"
    assert page.all("h1")[0].attrs["class"] == "govuk-label-wrapper"


# --- the other components -------------------------------------------------------------------


def test_button_variants_name_and_value() -> None:
    """A secondary or warning button, with a name and value, and without double-click guard."""
    (button,) = parse(
        _render(
            '{{ c.button("Go", secondary=true, name="action", value="add",'
            " prevent_double_click=false) }}"
        )
    ).all("button")
    assert _classes(button) == ["govuk-button", "govuk-button--secondary"]
    assert (button.attrs["name"], button.attrs["value"]) == ("action", "add")
    assert "data-prevent-double-click" not in button.attrs
    (warning,) = parse(_render('{{ c.button("Delete", warning=true) }}')).all("button")
    assert _classes(warning) == ["govuk-button", "govuk-button--warning"]


def test_start_button_link_has_its_icon() -> None:
    """A start button is a link styled as a button with the arrow."""
    page = parse(_render('{{ c.button_link("Start now", "/sign-in", start=true) }}'))
    (link,) = page.all("a")
    assert (link.attrs["role"], link.attrs["href"]) == ("button", "/sign-in")
    assert _classes(link) == ["govuk-button", "govuk-button--start"]
    assert page.all("svg")[0].attrs["class"] == "govuk-button__start-icon"


def test_warning_text_reads_out_warning_and_escapes() -> None:
    """Warning text has its icon hidden from screen readers and the word "Warning" read."""
    html = _render("{{ c.warning_text(v) }}", v=HOSTILE)
    page = parse(html)
    assert page.all("div")[0].attrs["class"] == "govuk-warning-text"
    icon, hidden = page.all("span")
    assert (icon.attrs["aria-hidden"], icon.text) == ("true", "!")
    assert (hidden.attrs["class"], hidden.text) == ("govuk-visually-hidden", "Warning")
    assert HOSTILE in page.all("strong")[0].text
    assert "<script>" not in html


def test_inset_text_escapes() -> None:
    """Inset text is one div with its class, its text escaped."""
    html = _render("{{ c.inset_text(v) }}", v=HOSTILE)
    (div,) = parse(html).all("div")
    assert (div.attrs["class"], div.text) == ("govuk-inset-text", HOSTILE)


def test_summary_card_title_and_list() -> None:
    """A summary card's title is a heading (h2 unless told) over its summary list."""
    rows = [{"key": "Name", "value": "Ann"}]
    page = parse(_render('{{ c.summary_card("Child", rows) }}', rows=rows))
    (title,) = page.all("h2")
    assert (title.attrs["class"], title.text) == ("govuk-summary-card__title", "Child")
    assert page.all("dl")[0].attrs["class"] == "govuk-summary-list"
    three = parse(_render('{{ c.summary_card("Child", rows, heading_level=3) }}', rows=rows))
    assert [h.text for h in three.all("h3")] == ["Child"]


def test_pagination_without_links_is_empty() -> None:
    """With neither a previous nor a next page nothing is made."""
    assert _render("{{ c.pagination() }}").strip() == ""


def test_pagination_block_links() -> None:
    """Previous and next as hrefs: block links, decorated titles, "page" read out."""
    page = parse(_render('{{ c.pagination("/p/1", "/p/3", landmark_label="Pages") }}'))
    (nav,) = page.all("nav")
    assert _classes(nav) == ["govuk-pagination", "govuk-pagination--block"]
    assert nav.attrs["aria-label"] == "Pages"
    links = page.all("a")
    assert [(a.attrs["href"], a.attrs["rel"]) for a in links] == [
        ("/p/1", "prev"),
        ("/p/3", "next"),
    ]
    titles = [s for s in page.all("span") if "govuk-pagination__link-title" in _classes(s)]
    assert [" ".join(s.text.split()) for s in titles] == ["Previous page", "Next page"]
    assert all("govuk-pagination__link-title--decorated" in _classes(s) for s in titles)


def test_pagination_link_text_and_labels() -> None:
    """A link's own text and label text replace the words and the decoration."""
    page = parse(
        _render(
            '{{ c.pagination(next={"href": "/n", "text": "Next page", "label_text": "2 of 3"}) }}'
        )
    )
    assert (
        parse(_render("{{ c.pagination(next='/n') }}")).all("nav")[0].attrs["aria-label"]
        == "Pagination"
    )
    (link,) = page.all("a")
    assert link.attrs["rel"] == "next"
    labels = [s for s in page.all("span") if "govuk-pagination__link-label" in _classes(s)]
    assert [s.text for s in labels] == ["2 of 3"]
    titles = [s for s in page.all("span") if "govuk-pagination__link-title" in _classes(s)]
    assert _classes(titles[0]) == ["govuk-pagination__link-title"]
    assert titles[0].text.strip() == "Next page"
    assert [d.attrs["class"] for d in page.all("div")] == ["govuk-pagination__next"]


def test_table_caption_classes_and_hidden_heading() -> None:
    """A table's caption takes its classes; a heading can be read by screen readers only."""
    html = _render(
        '{{ c.table(["Name", {"html": c.visually_hidden("Action")}], [["A", "B"]],'
        ' caption="People", caption_classes="govuk-visually-hidden") }}'
    )
    page = parse(html)
    (caption,) = page.all("caption")
    assert _classes(caption) == ["govuk-table__caption", "govuk-visually-hidden"]
    assert [th.text for th in page.all("th")] == ["Name", "Action"]
    assert page.all("span")[0].attrs["class"] == "govuk-visually-hidden"
    default = parse(_render('{{ c.table(["A"], [["x"]], caption="C") }}'))
    assert _classes(default.all("caption")[0]) == [
        "govuk-table__caption",
        "govuk-table__caption--m",
    ]


def test_table_rows_made_by_the_caller() -> None:
    """With a caller, each item's cells are the caller's; the first can be a row header."""
    html = _render(
        '{% call(row) c.table(["Name", "Age"], rows) %}'
        '<th scope="row" class="govuk-table__header">{{ row.name }}</th>'
        '<td class="govuk-table__cell">{{ row.age }}</td>{% endcall %}',
        rows=[{"name": HOSTILE, "age": 7}, {"name": "Bo", "age": 9}],
    )
    page = parse(html)
    assert [tr.attrs["class"] for tr in page.all("tr")] == ["govuk-table__row"] * 3
    assert [th.text for th in page.all("th")] == ["Name", "Age", HOSTILE, "Bo"]
    assert [td.text for td in page.all("td")] == ["7", "9"]
    assert "<script>" not in html


def test_table_first_cell_as_row_header() -> None:
    """first_cell_is_header makes each row's first cell its header."""
    page = parse(_render('{{ c.table(["A", "B"], [["x", "y"]], first_cell_is_header=true) }}'))
    assert [th.attrs["scope"] for th in page.all("th")] == ["col", "col", "row"]
