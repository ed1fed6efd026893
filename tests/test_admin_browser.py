"""The admin driven by a real headless Chromium (Debian's chromium and chromedriver, through Selenium).

One journey, as staff would make it: log in, read the orders (one row each, at the current status)
and their totals, switch to status events, filter and search, open an order (history and current
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


def listed_uniq_ids(driver):
    return [text.split()[1] for text in rows_text(driver)]  # the columns start with partner, unique id


def totals_rows(driver):
    """The totals table once loaded, {currency: [count, revenue, commission]} as shown."""
    wait_for(driver, "#order-totals-table")
    rows = driver.find_elements(By.CSS_SELECTOR, "#order-totals-table tbody tr")
    return {cells[0]: cells[1:] for cells in ([cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
                                              for row in rows)}


def totals_counted(driver):
    """What the totals count, as the header of their count column says (its text, not its CSS capitals)."""
    return driver.find_elements(By.CSS_SELECTOR, "#order-totals-table th")[1].get_attribute("textContent")


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

    # The order list: one row per order at its current status (EPN-1 went waiting -> completed -> a
    # late pending), and totals that count each order once, with the money of that status.
    browser.get(f"{admin_url}orders/order/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Orders at their current status"
    assert browser.find_element(By.ID, "list-rows").text.startswith("One row per order, at its current status")
    assert listed_uniq_ids(browser) == ["EPN-2", "EPN-1"]
    assert "completed (confirmed)" in rows_text(browser)[1]
    assert browser.find_element(By.CSS_SELECTOR, "p.paginator").text == "2 orders"
    assert totals_rows(browser) == {"RUB": ["1", "1500.00", "100.00"], "USD": ["1", "10.50", "1.25"]}
    assert "Each order counted once" in browser.find_element(By.ID, "order-totals-rows").text
    assert totals_counted(browser) == "orders"

    # Every status event, when asked for: EPN-1's three statuses are three rows, counted as events.
    load_page(browser, browser.find_element(By.LINK_TEXT, "Show every status event").click, "#list-rows")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Order status events"
    assert listed_uniq_ids(browser) == ["EPN-2", "EPN-1", "EPN-1", "EPN-1"]
    assert browser.find_element(By.CSS_SELECTOR, "p.paginator").text == "4 status events"
    assert totals_rows(browser) == {"RUB": ["3", "4500.00", "300.00"], "USD": ["1", "10.50", "1.25"]}
    assert "Every status event counted" in browser.find_element(By.ID, "order-totals-rows").text
    assert totals_counted(browser) == "status events"

    # Back to orders; filter by status in the sidebar (the current status), then search by an exact id.
    load_page(browser, browser.find_element(By.LINK_TEXT, "Show orders at their current status").click,
              "#list-rows")
    load_page(browser, browser.find_element(By.LINK_TEXT, "completed (confirmed)").click,
              "#changelist-filter li.selected a[href='?order_status__exact=completed']")
    assert listed_uniq_ids(browser) == ["EPN-1"]
    browser.get(f"{admin_url}orders/order/")
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys("EPN-2")
    load_page(browser, search.submit, "#searchbar[value='EPN-2']")
    assert listed_uniq_ids(browser) == ["EPN-2"]

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

    # The order list in Russian says what its rows are; download its CSV and read it back.
    browser.get(f"{admin_url}orders/order/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Заказы по текущему статусу"
    assert browser.find_element(By.CSS_SELECTOR, "p.paginator").text == "2 заказа"
    browser.find_element(By.ID, "export-csv").click()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not list(browser.downloads.glob("orders-current-status-*.csv")):
        time.sleep(0.1)
    [download] = browser.downloads.glob("orders-current-status-*.csv")
    rows = list(csv.reader(io.StringIO(download.read_text(encoding="utf-8"))))
    assert rows[0][2] == "уникальный id" and rows[0][5] == "текущий статус"
    assert sorted((row[2], row[5]) for row in rows[1:]) == [("EPN-1", "completed"), ("EPN-2", "waiting")]
