"""The glossary check: a source term in the input requires its translation in the output."""

from __future__ import annotations

import pytest

from llm_rollout.heuristics import CheckResult, CheckSpec, GlossaryCheck, parse_checks, run_checks

GLOSSARY = {"invoice": "Rechnung", "billing dashboard": "Abrechnungsübersicht"}


def check(output: str, input_text: str, **extra: object) -> CheckResult:
    spec = {"name": "glossary", "type": "glossary", "glossary": GLOSSARY, **extra}
    [result] = run_checks(parse_checks([spec]), output=output, input_text=input_text)
    return result


def test_terms_of_the_input_must_be_translated_as_the_glossary_says() -> None:
    assert check("Ihre Rechnung", "Your invoice").passed
    assert check("Die Rechnungsnummer", "The INVOICE number").passed  # compounds count
    result = check("Ihre Faktura in der Übersicht", "Your invoice in the billing dashboard")
    assert not result.passed
    assert result.detail == (
        "missing 'invoice -> Rechnung', 'billing dashboard -> Abrechnungsübersicht'"
    )


def test_terms_not_in_the_input_are_not_required() -> None:
    assert check("Hallo", "Hello").passed
    assert check("Hallo", "Invoices and invoiced").passed  # whole words only


def test_case_sensitive_targets() -> None:
    assert check("ihre rechnung", "your invoice").passed
    assert not check("ihre rechnung", "your invoice", caseSensitive=True).passed


def test_spec_form_and_validation() -> None:
    spec = CheckSpec.model_validate({"name": "g", "type": "glossary", "glossary": GLOSSARY})
    typed = spec.to_check()
    assert isinstance(typed, GlossaryCheck) and typed.glossary == GLOSSARY
    with pytest.raises(ValueError, match="glossary"):
        parse_checks([{"name": "g", "type": "glossary"}])
    with pytest.raises(ValueError, match="do not apply to glossary"):
        parse_checks([{"name": "g", "type": "glossary", "glossary": GLOSSARY, "max": 3}])
