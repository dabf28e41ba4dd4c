"""The control catalogue: enough realistic controls in the real categories."""

from __future__ import annotations

from fetcher.simulator.catalog import CATEGORIES, catalog

REAL_NAMES = {
    "MFARegistrationV2", "OneAdmin", "IntegratedApps", "BlockLegacyAuthentication", "AdminMFAV2",
    "SelfServicePasswordReset", "SigninRiskPolicy", "UserRiskPolicy", "PWAgePolicyNew",
    "meeting_restrictanonymousjoin_v1", "mdo_safelinksforemail", "exo_mailtipsenabled",
}  # fmt: skip


def test_catalog_has_the_asked_size_with_unique_names() -> None:
    controls = catalog(500)
    assert len(controls) >= 500
    assert len({control.name for control in controls}) == len(controls)


def test_catalog_covers_every_category_and_real_names() -> None:
    controls = catalog(230)
    assert {control.category for control in controls} == set(CATEGORIES)
    assert {control.name for control in controls} >= REAL_NAMES
    assert any(control.name.startswith(prefix) for control in controls for prefix in ("spo_", "mcas_", "scid_"))


def test_descriptions_come_plain_long_and_as_html() -> None:
    descriptions = [control.description for control in catalog(230)]
    assert any(text.startswith("<p>") for text in descriptions)
    assert any(len(text) > 500 for text in descriptions)
    assert any(len(text) < 100 and "<" not in text for text in descriptions)
