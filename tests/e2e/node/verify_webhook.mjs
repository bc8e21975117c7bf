// stripe.webhooks.constructEvent on a delivery kassa sent, unmodified: reads
// {body_base64, header, secret} on stdin, prints the event (or the verifier's error).
import Stripe from 'stripe';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const body = Buffer.from(input.body_base64, 'base64');
const stripe = new Stripe('sk_test_unused', {telemetry: false});

function verify(secret) {
  try {
    const event = stripe.webhooks.constructEvent(body, input.header, secret);
    return {ok: true, id: event.id, type: event.type, object_id: event.data.object.id,
            request: event.request};
  } catch (e) {
    return {ok: false, class: e.constructor.name, type: e.type, message: e.message};
  }
}

console.log(JSON.stringify({
  right: verify(input.secret),
  wrong: verify('whsec_not_the_secret'),
  tampered: (() => {
    try {
      stripe.webhooks.constructEvent(Buffer.concat([body, Buffer.from(' ')]), input.header,
                                     input.secret);
      return {ok: true};
    } catch (e) {
      return {ok: false, class: e.constructor.name};
    }
  })(),
}));
