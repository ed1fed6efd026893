"""The admin driven by a real headless Chromium (Debian's chromium and chromedriver, through Selenium).

Two journeys, as staff would make them. Orders: log in, read the orders (one row each, at the current
status) and their totals, switch to status events, filter and search, open an order (history and
current status), switch to Russian, replay a delivery, download the CSV. Networks: add one without code,
issue its tokens, and see the postback sent to a token's URL in the order list. A failure leaves a
screenshot in test-artifacts/.
"""

import csv
import io
import json
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote
from urllib.request import urlopen

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

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
    return [text.split()[0] for text in rows_text(driver)]  # the columns start with the unique id


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
    fits_the_window(browser, "order-list")

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
    assert "История статусов" in browser.page_source and "Постбэки этого заказа" in browser.page_source

    # Replay the invalid delivery from the delivery list.
    invalid = Delivery.objects.get(outcome="invalid")
    browser.get(f"{admin_url}orders/delivery/?outcome__exact=invalid")
    browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{invalid.pk}']").click()
    browser.find_element(By.CSS_SELECTOR, "select[name=action] option[value=replay]").click()
    message = load_page(browser, browser.find_element(By.CSS_SELECTOR, "button[name=index]").click,
                        "ul.messagelist li").text
    assert message.startswith(f"Постбэк №{invalid.pk}: по-прежнему некорректен: revenue")
    invalid.refresh_from_db()
    assert invalid.replayed_at is not None

    # The order list in Russian says what its rows are; download its CSV and read it back.
    browser.get(f"{admin_url}orders/order/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Заказы по текущему статусу"
    fits_the_window(browser, "order-list-ru")
    browser.get(f"{admin_url}orders/order/?rows=events")
    fits_the_window(browser, "order-status-events-ru")
    browser.get(f"{admin_url}orders/order/")
    assert browser.find_element(By.CSS_SELECTOR, "p.paginator").text == "2 заказа"
    browser.find_element(By.ID, "export-csv").click()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not list(browser.downloads.glob("orders-current-status-*.csv")):
        time.sleep(0.1)
    [download] = browser.downloads.glob("orders-current-status-*.csv")
    rows = list(csv.reader(io.StringIO(download.read_text(encoding="utf-8"))))
    assert rows[0][2] == "уникальный id" and rows[0][5] == "текущий статус"
    assert sorted((row[2], row[5]) for row in rows[1:]) == [("EPN-1", "completed"), ("EPN-2", "waiting")]


def fits_the_window(driver, name: str) -> None:
    """The list needs no sideways scrolling at the window's 1400 px, and its every column is on screen
    whole: the order, its status(es), the money and the date (a screenshot goes to the artefacts)."""
    screenshot(driver, name)
    for element in ("document.documentElement", "document.querySelector('#changelist .results')"):
        assert driver.execute_script(f"return {element}.scrollWidth <= {element}.clientWidth"), element
    right_edge = driver.execute_script("return document.querySelector('#changelist .results')"
                                       ".getBoundingClientRect().right")
    for header in driver.find_elements(By.CSS_SELECTOR, "#result_list thead th"):
        right = driver.execute_script("return arguments[0].getBoundingClientRect().right", header)
        assert right <= right_edge, header.text


def screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def fill(driver, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = driver.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)


@pytest.mark.django_db(transaction=True)
def test_staff_add_a_network_and_its_postbacks_arrive_under_it(browser, live_server, settings):
    """ActionPay fires one URL per event: a staff user with the network permissions adds it, issues a token
    for each event, copies the URL shown once, and the postback sent to it lands in the order list under
    ActionPay. A mapping without a required field is refused first, with a message naming it. Screenshots
    of each step go to test-artifacts/."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    user = User.objects.create_user("networks", password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="partners",
    ), *Permission.objects.filter(codename__in=["view_order", "view_delivery"]))
    admin_url = f"{live_server.url}/{settings.ADMIN_URL}"
    browser.get(admin_url)
    fill(browser, {"username": "networks", "password": PASSWORD})
    load_page(browser, browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click, "#user-tools")

    # The form without the parameter that carries the click id: refused, naming it.
    load_page(browser, browser.find_element(By.CSS_SELECTOR, "a[href$='partners/network/add/']").click,
              "#network_form")
    fill(browser, {"name": "ActionPay", "slug": "actionpay", "uniq_id_parameter": "uniqueid",
                   "commission_fee_parameter": "payment", "offer_id_parameter": "offer",
                   "time_of_order_parameter": "time", "default_currency": "RUB", "macro": "{name}"})
    load_page(browser, browser.find_element(By.NAME, "_save").click, ".errornote")
    summary = browser.find_element(By.CSS_SELECTOR, ".errorlist.nonfield").text
    assert summary == "Required fields not mapped: click id (user)."
    assert browser.find_element(By.CSS_SELECTOR, ".field-click_id_parameter .errorlist").text == \
        "Required: map the parameter that carries click id (user)."
    screenshot(browser, "network-refused-without-click-id")

    # Mapped: saved, and on its page the URL to paste, with ActionPay's macros.
    fill(browser, {"click_id_parameter": "subaccount"})
    load_page(browser, browser.find_element(By.NAME, "_save").click, "#postback-section")
    template = browser.find_element(By.ID, "url-template").text
    assert template == (f"{live_server.url}/webhook/<token>?uniqueid={{uniqueid}}&subaccount={{subaccount}}"
                        "&payment={payment}&offer={offer}&time={time}")

    # One token per event, each URL shown once; the "accepted" one is copied.
    urls = {}
    for label, status in (("created", "waiting"), ("accepted", "completed"), ("rejected", "rejected")):
        load_page(browser, browser.find_element(By.ID, "issue-token-link").click, "#issue-token-form")
        fill(browser, {"label": label, "implied_status": status})
        load_page(browser, browser.find_element(By.NAME, "issue").click, "#postback-url")
        urls[label] = browser.find_element(By.ID, "postback-url").get_attribute("value")
        screenshot(browser, f"network-token-{label}")
        load_page(browser, browser.find_element(By.LINK_TEXT, "Back to ActionPay").click, "#token-table")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#token-table .token-row")) == 3
    browser.execute_script("document.getElementById('postback-section').scrollIntoView()")
    screenshot(browser, "network-page")
    assert len(set(urls.values())) == 3 and all(url.startswith(f"{live_server.url}/webhook/") for url in urls.values())

    # ActionPay calls the "accepted" URL, its macros filled in.
    values = {"uniqueid": "AP-777", "subaccount": "user-42", "payment": "120.50", "offer": "55",
              "time": "2026-03-01 12:30:00"}
    called = urls["accepted"]
    for name, value in values.items():
        called = called.replace(f"{{{name}}}", quote(value))
    with urlopen(called, timeout=10) as answer:
        assert answer.status == 200 and json.loads(answer.read())["status"] == "created"

    # The order, under ActionPay in the order list's network filter.
    browser.get(f"{admin_url}orders/order/")
    load_page(browser, browser.find_element(By.LINK_TEXT, "ActionPay").click,
              "#changelist-filter li.selected a[href='?partner=actionpay']")
    assert listed_uniq_ids(browser) == ["AP-777"]
    assert rows_text(browser)[0].startswith("AP-777\nactionpay")
    assert "completed (confirmed)" in rows_text(browser)[0]
    screenshot(browser, "network-order-listed")
    order = Order.objects.get()
    assert (order.partner, order.click_id, order.commission_fee, order.original_status) == \
        ("actionpay", "user-42", Decimal("120.50"), "")
