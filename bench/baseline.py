"""The baseline receiver: a model of the original FastAPI service, for `make bench` to compare against.

FastAPI on one uvicorn process, a new pymysql connection per request, one `INSERT ... ON DUPLICATE KEY
UPDATE` into a `webhook_events` table of about 30 columns with the unique key (partner, uniq_id,
order_status) and nine secondary indexes, committed before answering.

The handler is `async def`, as the original's had to be to read a POST body (`await request.body()`),
and pymysql is a blocking driver, so by default the database work runs on the event loop and requests
are stored one at a time, as in the original. BASELINE_DB_CALLS=threadpool runs that work in
Starlette's thread pool instead, so that requests overlap while one waits for the database: a
stronger receiver than the original was, reported beside it so that nobody has to take the model on
trust.

Not part of the product: it lives in bench/ and runs only under `make bench`.
Environment: BASELINE_DATABASE (a mysql:// URL), BASELINE_TOKEN, BASELINE_DB_CALLS (inline|threadpool).
"""

import json
import os
from urllib.parse import parse_qsl, unquote, urlsplit

import pymysql
from fastapi import FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_events (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    partner VARCHAR(50) NOT NULL,
    event_type VARCHAR(50) NOT NULL DEFAULT 'order_status',
    uniq_id VARCHAR(255) NOT NULL,
    order_number VARCHAR(255) NOT NULL,
    click_id VARCHAR(255) NOT NULL,
    order_status VARCHAR(50) NOT NULL,
    offer_name VARCHAR(255) NULL,
    offer_type VARCHAR(255) NULL,
    offer_id VARCHAR(255) NULL,
    type_id INT NULL,
    sub VARCHAR(255) NULL,
    sub2 VARCHAR(255) NULL,
    sub3 VARCHAR(255) NULL,
    sub4 VARCHAR(255) NULL,
    sub5 VARCHAR(255) NULL,
    revenue DECIMAL(15, 2) NULL,
    commission_fee DECIMAL(15, 2) NULL,
    currency VARCHAR(10) NULL,
    ip VARCHAR(45) NULL,
    ipv6 VARCHAR(45) NULL,
    user_agent TEXT NULL,
    click_time DATETIME NULL,
    time_of_order DATETIME NULL,
    client_ip VARCHAR(45) NULL,
    request_user_agent TEXT NULL,
    raw_data JSON NULL,
    processed TINYINT(1) NOT NULL DEFAULT 1,
    processed_at DATETIME NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    UNIQUE KEY unique_event (partner, uniq_id, order_status),
    KEY idx_partner_status (partner, order_status),
    KEY idx_created_at (created_at),
    KEY idx_uniq_id (uniq_id),
    KEY idx_click_id (click_id),
    KEY idx_order_number (order_number),
    KEY idx_partner_created (partner, created_at),
    KEY idx_revenue_commission (revenue, commission_fee),
    KEY idx_event_type (event_type),
    KEY idx_offer_id (offer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""

COLUMNS = ("uniq_id", "order_number", "click_id", "order_status", "offer_name", "offer_type", "offer_id", "type_id",
           "sub", "sub2", "sub3", "sub4", "sub5", "revenue", "commission_fee", "currency", "ip", "ipv6", "user_agent",
           "click_time", "time_of_order")
INSERT = (
    f"INSERT INTO webhook_events (partner, event_type, {', '.join(COLUMNS)}, client_ip, request_user_agent,"
    f" raw_data, processed, processed_at) VALUES ('epn_bz', 'order_status', {', '.join(['%s'] * len(COLUMNS))},"
    " %s, %s, %s, 1, NOW())"
    " ON DUPLICATE KEY UPDATE raw_data = VALUES(raw_data), processed_at = NOW(), updated_at = NOW()"
)


def connect_args(url: str) -> dict:
    parts = urlsplit(url)
    return {"host": parts.hostname, "port": parts.port or 3306, "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""), "database": parts.path.lstrip("/"), "charset": "utf8mb4",
            # pymysql 1.2 tries TLS by default and builds a fresh SSL context (loading every system CA) per
            # connection, which would make the baseline ten times slower than the original, which
            # connected over plain TCP to its local database; we model the original, not that cost.
            "ssl_disabled": True}


DATABASE = connect_args(os.environ.get("BASELINE_DATABASE", "mysql://root@127.0.0.1:3306/baseline"))
TOKEN = os.environ.get("BASELINE_TOKEN", "")
IN_THREADPOOL = os.environ.get("BASELINE_DB_CALLS", "inline") == "threadpool"

app = FastAPI()


def create_schema() -> None:
    connection = pymysql.connect(**DATABASE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(SCHEMA)
        connection.commit()
    finally:
        connection.close()


@app.api_route("/webhook/{token}", methods=["GET", "POST"])
async def webhook(token: str, request: Request):
    if not TOKEN or token != TOKEN:
        raise HTTPException(status_code=403, detail="Invalid token")
    params = dict(request.query_params)
    if request.method == "POST":
        body = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            params.update(json.loads(body or b"{}"))
        else:
            params.update(parse_qsl(body.decode()))
    if not params.get("click_id") or not params.get("order_number") or not params.get("uniq_id"):
        raise HTTPException(status_code=400, detail="Missing required fields")
    values = [params.get(name) or None for name in COLUMNS]
    values += [request.client.host if request.client else None, request.headers.get("user-agent"),
               json.dumps(params, ensure_ascii=False)]
    try:
        event_id = await run_in_threadpool(store, values) if IN_THREADPOOL else store(values)
    except pymysql.MySQLError as error:
        raise HTTPException(status_code=503, detail="Database error") from error
    return {"status": "success", "message": "Webhook saved successfully", "id": event_id}


def store(values: list) -> int:
    connection = pymysql.connect(**DATABASE)  # a new connection per request, as the original did
    try:
        with connection.cursor() as cursor:
            cursor.execute(INSERT, values)
            event_id = cursor.lastrowid
        connection.commit()
    finally:
        connection.close()
    return event_id


if __name__ == "__main__":
    create_schema()
