"""The model page draws the last hour of transfers (uPlot) from the portal's history."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.web.portal import ARTIFACTS, manage
from tests.web.test_browser import DEMO

pytestmark = pytest.mark.slow
SAMPLES = """
from datetime import timedelta
from django.utils import timezone
from models_app.models import TransferSample
now = timezone.now()
TransferSample.objects.filter(model_id="{model}").delete()
TransferSample.objects.bulk_create([TransferSample(model_id="{model}", at=now - timedelta(seconds=5 * (120 - n)),
    download_rate=(n % 30) * 1024 * 1024, upload_rate=(n % 7) * 512 * 1024, peers=n % 4) for n in range(120)])
"""


def test_the_model_page_charts_rates_and_peers_of_the_last_hour(logged_in, portal):
    manage(portal.env, "shell", "-c", SAMPLES.format(model=DEMO))
    logged_in.goto(f"/models/{DEMO}/")
    chart = logged_in.locator("[data-transfer-chart]")
    expect(chart).to_have_attribute("data-ready", "true")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart.locator(".u-legend")).to_contain_text("Down")
    expect(chart.locator(".u-legend")).to_contain_text("Peers")
    expect(chart.locator("[data-chart-empty]")).to_be_hidden()
    chart.screenshot(path=str(ARTIFACTS / "transfer-chart.png"))
    logged_in.screenshot(path=str(ARTIFACTS / "model-page-transfers.png"), full_page=True)
