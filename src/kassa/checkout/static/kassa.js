/* kassa.js: card fields that post straight to kassa's card vault, and
 * confirmCardPayment(clientSecret) against kassa's API. No dependencies, no third-party
 * requests; served by kassa with its Subresource Integrity hash (README "Hosted checkout").
 *
 *   const kassa = Kassa("pk_test_…", {apiUrl: "https://pay.example", vaultUrl: "https://vault.example"});
 *   const card = kassa.mountCard("#card");
 *   const {paymentIntent, error} = await kassa.confirmCardPayment(clientSecret, {
 *     payment_method: {card: card, billing_details: {name: "Jenny Rosen"}},
 *     return_url: "https://shop.example/done"});
 *
 * The card number goes to the vault only (POST /v1/payment_methods with the publishable key);
 * the API sees the pm_… token it answers. A 3-D Secure challenge is a redirect: the promise
 * then resolves with {paymentIntent, redirecting: true} as the page leaves for it.
 */
(function (global) {
  "use strict";

  function randomKey() {
    if (global.crypto && global.crypto.randomUUID) return global.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    global.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function trim(url) { return String(url || "").replace(/\/+$/, ""); }

  function input(name, label, attrs) {
    var wrap = document.createElement("label");
    wrap.className = "kassa-field kassa-field-" + name;
    var text = document.createElement("span");
    text.textContent = label;
    // no name attribute: a native submit of a form around the fields (a page script
    // failing, Enter before kassa.js loaded) would send the card number and CVC to the
    // page's own URL. Autofill goes by `autocomplete`.
    var el = document.createElement("input");
    el.setAttribute("data-kassa-field", name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    wrap.appendChild(text);
    wrap.appendChild(el);
    return {wrap: wrap, el: el};
  }

  function digits(value) { return String(value || "").replace(/\D+/g, ""); }

  function formatNumber(value) {
    return digits(value).slice(0, 19).replace(/(\d{4})(?=\d)/g, "$1 ");
  }

  function formatExpiry(value) {
    var d = digits(value).slice(0, 4);
    return d.length > 2 ? d.slice(0, 2) + " / " + d.slice(2) : d;
  }

  function Card(root) {
    this.root = root;
    var number = input("cardnumber", "Card number", {
      autocomplete: "cc-number", inputmode: "numeric", placeholder: "1234 1234 1234 1234",
      "aria-label": "Card number", spellcheck: "false"});
    var expiry = input("exp-date", "Expiry", {
      autocomplete: "cc-exp", inputmode: "numeric", placeholder: "MM / YY",
      "aria-label": "Expiry date"});
    var cvc = input("cvc", "CVC", {
      autocomplete: "cc-csc", inputmode: "numeric", placeholder: "CVC", maxlength: "4",
      "aria-label": "CVC"});
    number.el.addEventListener("input", function () {
      number.el.value = formatNumber(number.el.value);
    });
    expiry.el.addEventListener("input", function () {
      expiry.el.value = formatExpiry(expiry.el.value);
    });
    cvc.el.addEventListener("input", function () { cvc.el.value = digits(cvc.el.value); });
    root.appendChild(number.wrap);
    var row = document.createElement("div");
    row.className = "kassa-row";
    row.appendChild(expiry.wrap);
    row.appendChild(cvc.wrap);
    root.appendChild(row);
    this.inputs = {number: number.el, expiry: expiry.el, cvc: cvc.el};
  }

  Card.prototype.values = function () {
    var exp = digits(this.inputs.expiry.value);
    return {
      number: digits(this.inputs.number.value),
      exp_month: exp.slice(0, 2),
      exp_year: exp.length >= 4 ? "20" + exp.slice(2, 4) : exp.slice(2),
      cvc: digits(this.inputs.cvc.value)
    };
  };

  Card.prototype.clear = function () {
    var inputs = this.inputs;
    Object.keys(inputs).forEach(function (k) { inputs[k].value = ""; });
  };

  Card.prototype.setDisabled = function (disabled) {
    var inputs = this.inputs;
    Object.keys(inputs).forEach(function (k) { inputs[k].disabled = !!disabled; });
  };

  function Kassa(key, options) {
    if (!(this instanceof Kassa)) return new Kassa(key, options);
    // a secret or restricted key in a browser is a leaked key: refused, as Stripe.js does
    if (/^(sk|rk)_/.test(String(key || ""))) {
      throw new Error("kassa.js: you should not use your secret key with kassa.js. " +
                      "Please pass a publishable key (pk_…) instead.");
    }
    options = options || {};
    this.key = key;
    this.apiUrl = trim(options.apiUrl);
    this.vaultUrl = trim(options.vaultUrl);
    var api = this.apiUrl;
    this.confirmUrl = options.confirmUrl || function (id) {
      return api + "/v1/payment_intents/" + encodeURIComponent(id) + "/confirm";
    };
  }

  Kassa.prototype.mountCard = function (target) {
    var root = typeof target === "string" ? document.querySelector(target) : target;
    if (!root) throw new Error("kassa.js: nothing to mount the card fields in");
    return new Card(root);
  };

  async function send(url, headers, body) {
    var response;
    try {
      response = await fetch(url, {method: "POST", headers: headers, body: body,
                                   credentials: "omit", cache: "no-store"});
    } catch (e) {
      return {error: {type: "api_connection_error",
                      message: "We could not reach the payment service. Check your connection and try again."}};
    }
    var answer;
    try { answer = await response.json(); } catch (e) { answer = {}; }
    if (!response.ok) {
      return {error: answer.error || {type: "api_error", message: "Something went wrong (" + response.status + ")."}};
    }
    return {body: answer};
  }

  /* The card's token from the vault: {paymentMethod} or {error}. */
  Kassa.prototype.createPaymentMethod = async function (card, billingDetails) {
    var v = card.values();
    var form = new URLSearchParams();
    form.append("type", "card");
    form.append("card[number]", v.number);
    form.append("card[exp_month]", v.exp_month);
    form.append("card[exp_year]", v.exp_year);
    if (v.cvc) form.append("card[cvc]", v.cvc);
    var billing = billingDetails || {};
    Object.keys(billing).forEach(function (k) {
      if (billing[k]) form.append("billing_details[" + k + "]", billing[k]);
    });
    var result = await send(this.vaultUrl + "/v1/payment_methods", {
      "Authorization": "Bearer " + this.key,
      "Content-Type": "application/x-www-form-urlencoded",
      "Idempotency-Key": randomKey()
    }, form.toString());
    return result.error ? {error: result.error} : {paymentMethod: result.body};
  };

  /* Tokenise (when given card fields) and confirm: {paymentIntent} or {error}. */
  Kassa.prototype.confirmCardPayment = async function (clientSecret, data) {
    data = data || {};
    var id = String(clientSecret).split("_secret_")[0];
    var method = data.payment_method;
    if (method && method.card instanceof Card) {
      var made = await this.createPaymentMethod(method.card, method.billing_details);
      if (made.error) return {error: made.error};
      method = made.paymentMethod.id;
    }
    var body = {client_secret: clientSecret};
    if (method) body.payment_method = method;
    if (data.return_url) body.return_url = data.return_url;
    var result = await send(this.confirmUrl(id), {
      "Authorization": "Bearer " + this.key,
      "Content-Type": "application/json",
      "Idempotency-Key": randomKey()
    }, JSON.stringify(body));
    if (result.error) return {error: result.error};
    var intent = result.body;
    var action = intent.next_action;
    if (intent.status === "requires_action" && action && action.type === "redirect_to_url"
        && data.handleActions !== false) {
      global.location.assign(action.redirect_to_url.url);
      return {paymentIntent: intent, redirecting: true};
    }
    return {paymentIntent: intent};
  };

  global.Kassa = Kassa;
})(window);
