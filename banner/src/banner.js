/*! koekje cookie banner. No framework, no dependencies, no cookies of its own: the server sets them. */
(function () {
  "use strict";

  /**
   * @typedef {{id: string, required: boolean, title: string, description: string}} Category
   * @typedef {{categories: string[], services: string[], given_at: string, decided: boolean}} Consent
   * @typedef {{lang: string, mode: string, categories: Category[], texts: Object<string, string>,
   *            privacy_url: (string|null), consent: (Consent|null), endpoints: {consent: string}}} BannerConfig
   */

  var script = document.currentScript;
  var base = script && script.src ? script.src.replace(/\/banner\.js(\?.*)?$/, "") : "/_koekje";

  /** @type {BannerConfig|null} */
  var config = null;
  /** @type {HTMLElement|null} */
  var root = null;
  /** Where focus was when the banner opened; it goes back there after a choice. */
  var returnFocus = null;
  /** The gated scripts and embeds that already ran on this page (withdrawing what allowed one reloads it). */
  var ran = [];
  /** Whether the server recorded this page (statistics were allowed when it was served): if not, and they
   * are granted here, the banner reports it, once. */
  var counted = false;
  /** Listeners of koekje.on("change", fn). */
  var listeners = [];
  /** Engagement of the page now shown: visible milliseconds so far, since when visible, deepest scroll. */
  var visibleMs = 0;
  var visibleSince = document.visibilityState === "visible" ? Date.now() : 0;
  var deepest = 0;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    if (text) node.textContent = text;
    return node;
  }

  function granted() {
    return config && config.consent ? config.consent.categories : [];
  }

  function decided() {
    return !!(config && config.consent && config.consent.decided);
  }

  /** Run the `<script type="text/plain" data-category="..." [data-service="..."]>` elements that the
   * granted categories or services allow. */
  function activate(consent) {
    var blocked = document.querySelectorAll('script[type="text/plain"][data-category]');
    Array.prototype.forEach.call(blocked, function (old) {
      if (!allowed(old, consent)) return;
      var live = document.createElement("script");
      Array.prototype.forEach.call(old.attributes, function (attr) {
        if (attr.name !== "type") live.setAttribute(attr.name, attr.value);
      });
      if (old.getAttribute("data-type")) live.type = old.getAttribute("data-type");
      if (old.getAttribute("data-src")) live.src = old.getAttribute("data-src");
      else live.text = old.text;
      old.parentNode.replaceChild(live, old);
      ran.push(live);
    });
    gateEmbeds(consent);
  }

  function allowed(element, consent) {
    var categories = consent ? consent.categories : [];
    var services = consent ? consent.services || [] : [];
    var service = element.getAttribute("data-service");
    return categories.indexOf(element.getAttribute("data-category") || findService(service)[1]) >= 0 ||
      services.indexOf(service) >= 0;
  }

  /** A declared service and the id of its category, by the service's id (or nulls). */
  function findService(id) {
    var found = [null, null];
    (config ? config.categories : []).forEach(function (category) {
      (category.services || []).forEach(function (service) {
        if (service.id === id) found = [service, category.id];
      });
    });
    return found;
  }

  /** Embeds (`<iframe data-service="youtube" data-src="...">`) load once their service or category is
   * granted; until then a placeholder offers to load them, which grants just that service. A site may
   * write its own placeholder: any element with data-koekje-placeholder and data-service, whose
   * [data-koekje-load] button does the same. */
  function gateEmbeds(consent) {
    var frames = document.querySelectorAll("iframe[data-src][data-service]");
    Array.prototype.forEach.call(frames, function (frame) {
      if (allowed(frame, consent)) {
        frame.src = frame.getAttribute("data-src");
        frame.removeAttribute("data-src");
        ran.push(frame);
        frame.style.removeProperty("display");
        var made = frame.previousElementSibling;
        if (made && made.hasAttribute("data-koekje-made")) {
          var focused = made.contains(document.activeElement);
          frame.parentNode.removeChild(made);
          if (focused) frame.focus(); // the keyboard stays where the content now is
        }
      } else if (
        !(frame.previousElementSibling && frame.previousElementSibling.hasAttribute("data-koekje-made")) &&
        !document.querySelector('[data-koekje-placeholder][data-service="' + frame.getAttribute("data-service").replace(/["\\]/g, "") + '"]')
      ) {
        var holder = placeholder(frame.getAttribute("data-service"));
        holder.setAttribute("data-koekje-made", "");
        frame.style.display = "none"; // not `hidden`: a site's own CSS for the frame would win over it
        frame.parentNode.insertBefore(holder, frame);
      }
    });
    var own = document.querySelectorAll("[data-koekje-placeholder][data-service]");
    Array.prototype.forEach.call(own, function (holder) {
      if (allowed(holder, consent)) holder.style.display = "none";
    });
  }

  function placeholder(id) {
    var t = config.texts;
    var service = findService(id)[0];
    if (!service && window.console) window.console.warn("koekje: no service " + id + " is declared in koekje.toml");
    var holder = el("div", { class: "koekje-placeholder", "data-service": id });
    holder.appendChild(el("p", {}, t.placeholder.split("{service}").join(service ? service.title : id)));
    holder.appendChild(el("button", { type: "button", "data-koekje-load": "" }, t.load));
    return holder;
  }

  /** Grant one more service, keeping everything else as it is. */
  function grantService(id) {
    var consent = config.consent;
    var categories = consent ? consent.categories : requiredIds();
    var services = (consent && consent.services || []).concat([id]);
    decide(categories, "embed", services);
  }

  function allows(category) {
    return granted().indexOf(category) >= 0;
  }

  /** Send events to the server's collect endpoint without holding up the page (or its unloading). */
  function beacon(events) {
    if (!config || !config.endpoints.collect || !allows("analytics")) return;
    var body = JSON.stringify(events);
    if (!(navigator.sendBeacon && navigator.sendBeacon(config.endpoints.collect, body))) {
      fetch(config.endpoints.collect, { method: "POST", body: body, credentials: "same-origin", keepalive: true });
    }
  }

  function here() {
    return location.pathname + location.search;
  }

  function pageView(referrer) {
    counted = true;
    beacon([{ t: "pageview", path: here(), referrer: referrer }]);
  }

  function scrolled() {
    var doc = document.documentElement;
    var height = Math.max(doc.scrollHeight, document.body ? document.body.scrollHeight : 0);
    var seen = height > 0 ? Math.round(Math.min(1, (window.scrollY + window.innerHeight) / height) * 100) : 100;
    if (seen > deepest) deepest = seen;
  }

  /** Report how long the page was visible and how far it was scrolled; from then on it counts afresh. */
  function engagement(path) {
    if (visibleSince) visibleMs += Date.now() - visibleSince;
    visibleSince = document.visibilityState === "visible" ? Date.now() : 0;
    if (visibleMs > 0) {
      var ms = Math.min(Math.round(visibleMs), 86400000);
      beacon([{ t: "engagement", path: path, visible_ms: ms, scroll: deepest }]);
    }
    visibleMs = 0;
    deepest = 0;
  }

  function watchEngagement() {
    var path = here();
    window.addEventListener("scroll", scrolled, { passive: true });
    // Reported when the page is hidden (another tab, the phone locked) and when it is left; once left,
    // not again (browsers fire pagehide and visibilitychange in either order), until it is shown again.
    var left = false;
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") visibleSince = Date.now();
      else if (!left) engagement(path);
    });
    window.addEventListener("pagehide", function () {
      if (!left && document.visibilityState === "visible") engagement(path);
      left = true;
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) left = false; // back from the back/forward cache: a new look at the page
    });
    // A single-page app opts in with <html data-koekje-spa>: each history entry it shows is a page.
    if (!document.documentElement.hasAttribute("data-koekje-spa")) return;
    function navigated() {
      if (here() === path) return;
      engagement(path);
      var previous = location.origin + path;
      path = here();
      scrolled();
      beacon([{ t: "pageview", path: path, referrer: previous }]);
    }
    var push = history.pushState;
    history.pushState = function () {
      var result = push.apply(this, arguments);
      navigated();
      return result;
    };
    window.addEventListener("popstate", navigated);
  }

  /** Google Consent Mode: tell the tags what the new decision grants (the server's default came first). */
  function consentModeUpdate(consent) {
    var types = config.consent_mode;
    if (!types) return;
    var names = consent.categories.concat(consent.services || []);
    var state = {};
    Object.keys(types).forEach(function (kind) {
      state[kind] = types[kind].some(function (name) {
        return names.indexOf(name) >= 0;
      }) ? "granted" : "denied";
    });
    window.dataLayer = window.dataLayer || [];
    (window.gtag || function () {
      window.dataLayer.push(arguments);
    })("consent", "update", state);
  }

  function changed(consent) {
    consentModeUpdate(consent);
    document.dispatchEvent(new CustomEvent("koekje:change", { detail: consent }));
    listeners.forEach(function (listener) {
      try {
        listener(consent);
      } catch (error) {
        if (window.console) window.console.error(error);
      }
    });
  }

  /** Bring the server's markup (the form that works without JavaScript) to life: the same buttons decide
   * without leaving the page, "choose" unfolds the second layer in place. */
  function enhance(section) {
    root = section;
    var form = section.querySelector("form");
    var choices = section.querySelector("#koekje-choices");
    Array.prototype.forEach.call(choices.querySelectorAll(".koekje-category"), function (row) {
      var box = row.querySelector("input:not([data-service])");
      var services = row.querySelectorAll("input[data-service]");
      // Granting the category grants its services; withdrawing one of them is no longer the whole category.
      box.addEventListener("change", function () {
        Array.prototype.forEach.call(services, function (service) {
          if (!service.disabled) service.checked = box.checked;
        });
      });
      Array.prototype.forEach.call(services, function (service) {
        service.addEventListener("change", function () {
          if (!service.checked && !box.disabled) box.checked = false;
        });
      });
    });
    form.addEventListener("submit", function (event) {
      var action = event.submitter && event.submitter.value;
      if (!action || !config) return; // an old browser, or no configuration: the form posts itself
      event.preventDefault();
      if (action === "choose") return expand(section);
      if (action === "reject") return decide(requiredIds(), "banner");
      if (action === "accept") {
        return decide(config.categories.map(function (category) {
          return category.id;
        }), "banner");
      }
      var checked = function (selector) {
        return Array.prototype.filter.call(choices.querySelectorAll(selector), function (box) {
          return box.checked && !box.disabled;
        });
      };
      var picked = requiredIds().concat(checked('input[name="category"]').map(function (box) {
        return box.value;
      }));
      // A service counts on its own only where its whole category is not granted.
      var services = checked("input[data-service]").filter(function (box) {
        return picked.indexOf(box.closest(".koekje-category").querySelector("input:not([data-service])").value) < 0;
      }).map(function (box) {
        return box.value;
      });
      decide(picked, "settings", services);
    });
    section.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && decided()) {
        hide();
        restoreFocus();
      }
    });
  }

  function requiredIds() {
    return config.categories.filter(function (category) {
      return category.required;
    }).map(function (category) {
      return category.id;
    });
  }

  function expand(dialog) {
    dialog.querySelector("#koekje-choices").hidden = false;
    var save = dialog.querySelector('button[value="save"]');
    var choose = dialog.querySelector('button[value="choose"]');
    if (save) save.hidden = false;
    if (choose) {
      choose.setAttribute("aria-expanded", "true");
      choose.hidden = true;
    }
    var first = dialog.querySelector("#koekje-choices input:not([disabled])");
    if (first) first.focus();
  }

  /** Show the banner: the one the server put into the page, else the server's markup fetched now (for a
   * visitor who reopens their choice). First in <body>, so keyboard and screen-reader users meet it first. */
  function show(reopened) {
    var served = document.getElementById("koekje");
    if (served && served !== root) enhance(served);
    if (root) return opened(reopened);
    var query = "?lang=" + encodeURIComponent(config.lang) + "&return=" + encodeURIComponent(here());
    fetch(base + "/banner.html" + query, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error("koekje: no banner (" + response.status + ")");
      return response.text();
    }).then(function (markup) {
      if (root) return;
      var holder = document.createElement("template");
      holder.innerHTML = markup;
      var section = holder.content.firstElementChild;
      document.body.insertBefore(section, document.body.firstChild);
      enhance(section);
      opened(reopened);
    }).catch(function (error) {
      if (window.console) window.console.warn(error);
    });
  }

  function opened(reopened) {
    if (!reopened) return;
    returnFocus = document.activeElement;
    expand(root);
    root.querySelector("#koekje-title").focus();
  }

  function hide() {
    if (root && root.parentNode) root.parentNode.removeChild(root);
    root = null;
    floatingButton();
  }

  /** Back where the visitor was when they reopened the banner (a link, the floating button). */
  function restoreFocus() {
    if (returnFocus && returnFocus !== document.body && document.contains(returnFocus)) returnFocus.focus();
    returnFocus = null;
  }

  /** With banner.floating_button: a small fixed button that reopens the banner, once the visitor chose (the
   * server renders it into the pages it serves them; this adds it right after a first choice). */
  function floatingButton() {
    if (!config || !config.floating_button || !decided() || document.querySelector(".koekje-floating")) return;
    var floating = el("button", { type: "button", class: "koekje-floating", "data-koekje-open": "" }, config.texts.settings);
    floating.setAttribute("lang", config.lang);
    document.body.appendChild(floating);
  }

  function decide(categories, method, services) {
    fetch(config.endpoints.consent, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ categories: categories, services: services || [], lang: config.lang, method: method }),
    }).then(function (response) {
      if (!response.ok) throw new Error("koekje: consent not recorded (" + response.status + ")");
      return response.json();
    }).then(function (result) {
      config.consent = result.consent;
      hide();
      restoreFocus();
      var withdrawn = ran.some(function (element) {
        return !allowed(element, result.consent);
      });
      changed(result.consent);
      // Scripts and embeds that already ran cannot be unloaded: a reload stops them. Nothing ran that is
      // now withdrawn: no reload, and what is still blocked stays blocked.
      if (withdrawn) window.location.reload();
      else {
        activate(result.consent);
        // One embed loaded is no answer to the rest: a visitor not asked yet still is.
        if (method === "embed" && !decided()) show(false);
        // The page on which statistics were granted was served without them: report it, once.
        if (!counted && allows("analytics")) pageView(document.referrer);
      }
    }).catch(function () {
      if (root) root.querySelector(".koekje-error").textContent = config.texts.error;
    });
  }

  /** A "cookie settings" click before the configuration has arrived is not lost: it opens the banner
   * as soon as it has. */
  var openWhenLoaded = false;

  function open() {
    if (config) show(true);
    else openWhenLoaded = true;
  }

  function bindOpeners() {
    document.addEventListener("click", function (event) {
      var target = event.target && event.target.closest ? event.target : null;
      if (!target) return;
      var opener = target.closest("[data-koekje-open]");
      var load = target.closest("[data-koekje-load]");
      if (opener) {
        event.preventDefault();
        open();
      } else if (load && config) {
        var holder = load.closest("[data-service]");
        if (holder) grantService(holder.getAttribute("data-service"));
      }
    });
  }

  function start() {
    var lang = document.documentElement.getAttribute("lang") || "";
    fetch(base + "/config.json?lang=" + encodeURIComponent(lang), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      if (!response.ok) throw new Error("koekje: no banner configuration (" + response.status + ")");
      return response.json();
    }).then(function (loaded) {
      config = loaded;
      counted = allows("analytics"); // served with statistics allowed: the server recorded it
      scrolled();
      watchEngagement();
      if (config.consent) activate(config.consent);
      else gateEmbeds(null);
      // A region's default or a browser signal is not a choice: the visitor is still asked. A banner in a
      // page served before they chose (from a cache, or the back/forward cache) goes.
      var served = document.getElementById("koekje");
      if (openWhenLoaded || !decided()) show(openWhenLoaded);
      else if (served) served.parentNode.removeChild(served);
      floatingButton();
    }).catch(function (error) {
      // Without the configuration nothing is asked and nothing is consented: blocked scripts stay blocked.
      if (window.console) window.console.warn(error);
    });
  }

  window.koekje = {
    open: open,
    /** The visitor's current decision (null before any, or before the configuration has loaded). */
    get: function () {
      return config ? config.consent : null;
    },
    /** Call fn(consent) whenever the visitor decides (also as the DOM event "koekje:change"). */
    on: function (name, fn) {
      if (name === "change" && typeof fn === "function") listeners.push(fn);
    },
  };
  bindOpeners();

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
