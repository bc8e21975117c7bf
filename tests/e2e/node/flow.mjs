// A merchant's integration, as written against Stripe, pointed at kassa by host/port only:
// create, confirm, capture, refund, list with auto-pagination, retrieve, and the errors a
// real integration handles. Prints one JSON object (what the Python test asserts on).
import Stripe from 'stripe';

const base = new URL(process.env.KASSA_URL);
const stripe = new Stripe(process.env.KASSA_KEY, {
  host: base.hostname,
  port: Number(base.port),
  protocol: base.protocol.replace(':', ''),
  maxNetworkRetries: 0,
  telemetry: false,
});

function error(e) {
  return {
    class: e.constructor.name, type: e.type, rawType: e.rawType, code: e.code,
    decline_code: e.decline_code, param: e.param, statusCode: e.statusCode,
    requestId: e.requestId, doc_url: e.doc_url, request_log_url: e.request_log_url,
    message: e.message, isCardError: e instanceof Stripe.errors.StripeCardError,
    isInvalidRequest: e instanceof Stripe.errors.StripeInvalidRequestError,
    isIdempotency: e instanceof Stripe.errors.StripeIdempotencyError,
    payment_intent: e.payment_intent ? e.payment_intent.id : null,
  };
}

async function failure(call) {
  try {
    await call();
  } catch (e) {
    return error(e);
  }
  return null;
}

const out = {};
const pi = await stripe.paymentIntents.create(
  {amount: 2000, currency: 'usd', capture_method: 'manual', metadata: {order: 'node-1'}},
  {idempotencyKey: 'node-create-1'});
out.created = {id: pi.id, status: pi.status, metadata: pi.metadata,
               requestId: pi.lastResponse.requestId,
               idempotencyKey: pi.lastResponse.idempotencyKey};
const again = await stripe.paymentIntents.create(
  {amount: 2000, currency: 'usd', capture_method: 'manual', metadata: {order: 'node-1'}},
  {idempotencyKey: 'node-create-1'});
out.replayed = {id: again.id, requestId: again.lastResponse.requestId,
                replayed: again.lastResponse.headers['idempotent-replayed'],
                originalRequest: again.lastResponse.headers['original-request']};
const confirmed = await stripe.paymentIntents.confirm(pi.id, {payment_method: 'pm_card_visa'});
out.confirmed = {status: confirmed.status, amount_capturable: confirmed.amount_capturable};
const captured = await stripe.paymentIntents.capture(pi.id, {amount_to_capture: 1500});
out.captured = {status: captured.status, amount_received: captured.amount_received};
const refund = await stripe.refunds.create({payment_intent: pi.id, amount: 500});
out.refund = {id: refund.id, status: refund.status, amount: refund.amount,
              payment_intent: refund.payment_intent};

const more = [];
for (let i = 0; i < 4; i++) {
  more.push((await stripe.paymentIntents.create({amount: 100 + i, currency: 'eur'})).id);
}
out.more = more;
const each = [];
await stripe.paymentIntents.list({limit: 2}).autoPagingEach((p) => { each.push(p.id); });
out.autoPagingEach = each;
const all = await stripe.paymentIntents.list({limit: 2}).autoPagingToArray({limit: 100});
out.autoPagingToArray = all.map((p) => p.id);
const firstPage = await stripe.paymentIntents.list({limit: 2});
out.firstPage = {ids: firstPage.data.map((p) => p.id), has_more: firstPage.has_more};

const retrieved = await stripe.paymentIntents.retrieve(pi.id);
out.retrieved = {id: retrieved.id, status: retrieved.status, amount: retrieved.amount,
                 amount_received: retrieved.amount_received, metadata: retrieved.metadata};

out.decline = await failure(() => stripe.paymentIntents.create(
  {amount: 500, currency: 'usd', confirm: true, payment_method: 'pm_card_chargeDeclined'}));
out.missing = await failure(() => stripe.paymentIntents.retrieve('pi_missing'));
out.badInteger = await failure(() => stripe.paymentIntents.create(
  {amount: 'ten', currency: 'usd'}));
out.badCursor = await failure(() => stripe.paymentIntents.list({starting_after: 'pi_gone'}));
out.keyReuse = await failure(() => stripe.paymentIntents.create(
  {amount: 2001, currency: 'usd'}, {idempotencyKey: 'node-create-1'}));

console.log(JSON.stringify(out));
