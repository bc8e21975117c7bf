from kassa.ledger.verify import verify
from kassa.services import merchants, payments


async def test_probe(kassa):
    m = (await merchants.create_merchant(kassa, name="x"))["merchant_id"]
    p = await payments.create(kassa, merchant_id=m, amount=1000, currency="usd",
                              payment_method="pm_card_visa", capture_method="manual", confirm=True)
    print(p["status"])
    try:
        r = await payments.confirm(kassa, merchant_id=m, payment_id=p["id"])
        print("confirm ->", r["status"])
    except Exception as e:
        print("confirm raised", type(e), e)
    print((await payments.retrieve(kassa, merchant_id=m, payment_id=p["id"]))["status"])
    print(await kassa.pool.fetch("select id, operation, status from attempts where payment_intent_id=$1", p["id"]))
    print((await verify(kassa.pool)).problems)


async def test_probe_ra(kassa):
    m = (await merchants.create_merchant(kassa, name="x"))["merchant_id"]
    p = await payments.create(kassa, merchant_id=m, amount=1000, currency="usd",
                              payment_method="pm_card_authenticationRequired", confirm=True)
    print(p["status"])
    try:
        r = await payments.confirm(kassa, merchant_id=m, payment_id=p["id"], payment_method="pm_card_visa")
        print("confirm ->", r["status"], r["payment_method"])
    except Exception as e:
        print("confirm raised", type(e), e)
    try:
        r = await payments.confirm(kassa, merchant_id=m, payment_id=p["id"])
        print("confirm2 ->", r["status"], r["payment_method"])
    except Exception as e:
        print("confirm2 raised", type(e), e)
    print(await kassa.pool.fetch("select id, operation, status from attempts where payment_intent_id=$1", p["id"]))
