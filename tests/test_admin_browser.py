"""The admin driven by a real headless Chromium (Debian's chromium and chromedriver, through Selenium).

One journey, as staff would make it: log in, filter and search, open an order (history and current
status), switch to Russian, replay a delivery, download the CSV. A failure leaves a screenshot in
test-artifacts/.
"""

import csv
import io
import time
from pathlib import Path

import pytest
from django.conf import settings
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from orders.models import Delivery, Order
from tests.admin_helpers import PASSWORD, load_orders, make_admin

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"


@pytest.fixture
def browser(request, tmp_path):
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "install Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--disable-quic", "--window-size=1400,1000",
                     f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(tmp_path / "downloads"), "download.prompt_for_download": False,
        "intl.accept_languages": "en",
    })
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    driver.downloads = tmp_path / "downloads"
    failed_before = request.session.testsfailed
    yield driver
    if request.session.testsfailed > failed_before:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
        (ARTIFACTS / f"{request.node.name}.html").write_text(driver.page_source)
    driver.quit()


def wait_for(driver, selector, timeout=10):
    return WebDriverWait(driver, timeout).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR,
                                                                                                  selector)))


def load_page(driver, action, ready_selector, timeout=10):
    """Run `action` (a click or a submit that loads a new page) and wait for that page.

    First for the old page to go (its root element turns stale), then for `ready_selector` on the new
    one: a selector alone that the old page also matches would let the test read the old page.
    """
    old_page = driver.find_element(By.TAG_NAME, "html")
    action()
    WebDriverWait(driver, timeout).until(expected_conditions.staleness_of(old_page))
    return wait_for(driver, ready_selector, timeout)


def rows_text(driver):
    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")]


@pytest.mark.django_db(transaction=True)
def test_staff_journey_through_the_admin(browser, live_server, settings):
    # Plain-HTTP loopback: the session and CSRF cookies may not be marked Secure here.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    load_orders()
    make_admin("boss")
    admin_url = f"{live_server.url}/{settings.ADMIN_URL}"

    # Log in through the form.
    browser.get(admin_url)
    browser.find_element(By.NAME, "username").send_keys("boss")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    load_page(browser, browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click, "#user-tools")

    # Filter by status in the sidebar, then search by an exact unique id.
    browser.get(f"{admin_url}orders/order/")
    assert len(rows_text(browser)) == 4
    totals = wait_for(browser, "#order-totals-table")
    assert "USD" in totals.text and "10.5" in totals.text
    load_page(browser, browser.find_element(By.LINK_TEXT, "pending (on hold)").click,
              "#changelist-filter li.selected a[href='?order_status__exact=pending']")
    assert [text.split()[1] for text in rows_text(browser)] == ["EPN-1"]
    browser.get(f"{admin_url}orders/order/")
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys("EPN-2")
    load_page(browser, search.submit, "#searchbar[value='EPN-2']")
    assert [text.split()[1] for text in rows_text(browser)] == ["EPN-2"]

    # Open EPN-1's first row: its whole history, and the current status despite the late pending.
    waiting = Order.objects.get(uniq_id="EPN-1", order_status="waiting")
    browser.get(f"{admin_url}orders/order/{waiting.pk}/change/")
    history = [row.get_attribute("data-status") for row in browser.find_elements(By.CSS_SELECTOR, ".history-row")]
    assert history == ["waiting", "completed", "pending"]
    assert browser.find_element(By.ID, "current-status").text == "completed (confirmed)"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".delivery-row")) == 3

    # Switch to Russian with the language buttons.
    browser.find_element(By.CSS_SELECTOR, "#language-switch button[value=ru]").click()
    WebDriverWait(browser, 10).until(lambda driver: "Текущий статус" in driver.page_source)
    assert browser.find_element(By.ID, "current-status").text == "подтверждён"
    assert "История статусов" in browser.page_source and "Доставки этого заказа" in browser.page_source

    # Replay the invalid delivery from the delivery list.
    invalid = Delivery.objects.get(outcome="invalid")
    browser.get(f"{admin_url}orders/delivery/?outcome__exact=invalid")
    browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{invalid.pk}']").click()
    browser.find_element(By.CSS_SELECTOR, "select[name=action] option[value=replay]").click()
    message = load_page(browser, browser.find_element(By.CSS_SELECTOR, "button[name=index]").click,
                        "ul.messagelist li").text
    assert message.startswith(f"Доставка №{invalid.pk}: по-прежнему некорректна: revenue")
    invalid.refresh_from_db()
    assert invalid.replayed_at is not None

    # Download the CSV of the current-rows filter and read it back.
    browser.get(f"{admin_url}orders/order/?is_current__exact=1")
    browser.find_element(By.ID, "export-csv").click()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not list(browser.downloads.glob("orders-*.csv")):
        time.sleep(0.1)
    [download] = browser.downloads.glob("orders-*.csv")
    rows = list(csv.reader(io.StringIO(download.read_text(encoding="utf-8"))))
    assert rows[0][2] == "уникальный id"
    assert sorted((row[2], row[5]) for row in rows[1:]) == [("EPN-1", "completed"), ("EPN-2", "waiting")]
