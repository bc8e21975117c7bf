/* The hosted checkout page's behaviour: card fields from kassa.js, Pay once, errors inline,
 * 3-D Secure by redirect (kassa brings the customer back here), then on to return_url. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("kassa-config").textContent);
  var form = document.getElementById("payment-form");
  if (!form) return;  // nothing left to pay: the page only shows how it ended
  var button = document.getElementById("pay");
  var errorBox = document.getElementById("card-errors");
  var nameInput = document.getElementById("cardholder-name");
  var kassa = window.Kassa(config.token, {
    vaultUrl: config.vault_url,
    confirmUrl: function () { return config.confirm_url; }
  });
  var card = kassa.mountCard("#card-element");
  var busy = false;

  function showError(message) {
    errorBox.textContent = message || "Your payment could not be completed.";
    errorBox.hidden = false;
  }

  function withQuery(url, params) {
    var target = new URL(url);
    Object.keys(params).forEach(function (k) { target.searchParams.append(k, params[k]); });
    return target.toString();
  }

  function finished(intent) {
    var status = intent.status === "requires_capture" ? "succeeded" : intent.status;
    if (config.return_url) {
      window.location.assign(withQuery(config.return_url, {
        payment_intent: intent.id, redirect_status: status}));
      return;
    }
    window.location.assign(config.page_url);  // the page, now showing the outcome
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (busy) return;  // a second click while the first is under way pays nothing more
    busy = true;
    button.disabled = true;
    card.setDisabled(true);
    button.setAttribute("aria-busy", "true");
    errorBox.hidden = true;
    errorBox.textContent = "";
    var billing = nameInput && nameInput.value ? {name: nameInput.value} : {};
    var result = await kassa.confirmCardPayment(config.client_secret, {
      payment_method: {card: card, billing_details: billing},
      return_url: config.action_return_url
    });
    if (result.redirecting) return;  // off to the 3-D Secure challenge
    if (result.error) {
      showError(result.error.message);
      busy = false;
      button.disabled = false;
      card.setDisabled(false);
      button.removeAttribute("aria-busy");
      return;
    }
    var intent = result.paymentIntent;
    if (intent.status === "succeeded" || intent.status === "requires_capture" ||
        intent.status === "processing") {
      finished(intent);
      return;
    }
    showError(intent.last_payment_error && intent.last_payment_error.message);
    busy = false;
    button.disabled = false;
    card.setDisabled(false);
    button.removeAttribute("aria-busy");
  });
})();
