// The ops dashboard's live counts: polls the ops API and redraws the figures.
// Everything is written with textContent (never innerHTML), so no text from the server is
// ever read as markup. Ages are formatted as hub.notify.templates.format_age does on the server.
(function () {
  "use strict";

  var body = document.body;
  var root = body.dataset.root || "";
  var pollMs = parseInt(body.dataset.pollMs, 10) || 5000;
  var words = {
    minute: body.dataset.wordMinute,
    hour: body.dataset.wordHour,
    day: body.dataset.wordDay,
    days: body.dataset.wordDays,
    none: body.dataset.wordNone
  };

  function namesFrom(templateId, attribute) {
    var names = {};
    var template = document.getElementById(templateId);
    if (!template) { return names; }
    var spans = template.content.querySelectorAll("span");
    for (var i = 0; i < spans.length; i++) {
      names[spans[i].getAttribute(attribute)] = spans[i].textContent;
    }
    return names;
  }

  var kindNames = namesFrom("kind-names", "data-kind");
  var severityNames = namesFrom("severity-names", "data-severity");

  function formatAge(minutes) {
    if (minutes === null || minutes === undefined) { return words.none; }
    if (minutes < 60) { return minutes + " " + words.minute; }
    if (minutes < 1440) {
      var h = Math.floor(minutes / 60), m = minutes % 60;
      return m ? h + " " + words.hour + " " + m + " " + words.minute : h + " " + words.hour;
    }
    var d = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60);
    var dayWord = d === 1 ? words.day : words.days;
    return hours ? d + " " + dayWord + " " + hours + " " + words.hour : d + " " + dayWord;
  }

  function share(part, total) {
    if (!total) { return words.none; }
    return Math.floor((100 * part) / total + 0.5) + " %";
  }

  var stockholm = new Intl.DateTimeFormat("sv-SE", {
    timeZone: "Europe/Stockholm", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });

  function localTime(iso) {
    return stockholm.format(new Date(iso));
  }

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element && element.textContent !== String(text)) { element.textContent = String(text); }
  }

  function cell(tag, className, text) {
    var element = document.createElement(tag);
    if (className) { element.className = className; }
    element.textContent = String(text);
    return element;
  }

  var hideEmpty = document.getElementById("hide-empty");

  function applyFilter() {
    var table = document.getElementById("backlog");
    table.classList.toggle("hide-empty", hideEmpty.checked);
  }

  function drawBacklog(backlog) {
    var tbody = document.querySelector("#backlog tbody");
    var fresh = document.createElement("tbody");
    backlog.units.forEach(function (unit) {
      var row = document.createElement("tr");
      row.dataset.unit = unit.hsa_id;
      row.className = unit.unreceipted === 0 ? "empty" : "waiting";
      var name = cell("th", "name", unit.name);
      name.scope = "row";
      row.appendChild(name);
      row.appendChild(cell("td", "kind", unit.kind ? (kindNames[unit.kind] || unit.kind) : words.none));
      row.appendChild(cell("td", "municipality", unit.municipality || words.none));
      row.appendChild(cell("td", "num count", unit.unreceipted));
      row.appendChild(cell("td", "num weekday", unit.weekday));
      row.appendChild(cell("td", "num weekend", unit.weekend_or_holiday));
      row.appendChild(cell("td", "num oldest", formatAge(unit.oldest_age_minutes)));
      fresh.appendChild(row);
    });
    tbody.replaceWith(fresh);
  }

  function drawSummary(summary) {
    setText("total-unreceipted", summary.unreceipted);
    setText("units-with-backlog", summary.units_with_backlog);
    setText("oldest-age", formatAge(summary.oldest_age_minutes));
    setText("weekend-share", share(summary.weekend_or_holiday, summary.unreceipted));
    setText("open-alerts-count", summary.open_alerts);
    setText("acknowledged", summary.acknowledged);
    var updated = document.getElementById("updated-at");
    updated.setAttribute("datetime", summary.generated_at);
    updated.textContent = localTime(summary.generated_at);
    summary.overdue_by_level.forEach(function (level) {
      var item = document.querySelector('#overdue-levels li[data-level="' + level.level + '"] .value');
      if (item) { item.textContent = String(level.count); }
    });
  }

  function drawAlerts(alerts) {
    var list = document.getElementById("alerts");
    var fresh = list.cloneNode(false);
    if (!alerts.length) {
      fresh.appendChild(cell("li", "none", list.dataset.empty));
    }
    alerts.forEach(function (alert) {
      var item = document.createElement("li");
      item.className = "alert " + alert.severity;
      item.appendChild(cell("span", "severity", severityNames[alert.severity] || alert.severity));
      item.appendChild(document.createTextNode(" "));
      var time = cell("time", "", localTime(alert.raised_at));
      time.setAttribute("datetime", alert.raised_at);
      item.appendChild(time);
      item.appendChild(document.createTextNode(" "));
      item.appendChild(cell("span", "summary", alert.summary));
      fresh.appendChild(item);
    });
    list.replaceWith(fresh);
  }

  function getJson(path) {
    return fetch(root + path, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      });
  }

  function poll() {
    Promise.all([getJson("/v1/ops/backlog"), getJson("/v1/ops/summary"), getJson("/v1/ops/alerts")])
      .then(function (results) {
        drawBacklog(results[0]);
        drawSummary(results[1]);
        drawAlerts(results[2]);
        document.getElementById("offline").hidden = true;
      })
      .catch(function () {
        document.getElementById("offline").hidden = false;
      })
      .then(function () { window.setTimeout(poll, pollMs); });
  }

  hideEmpty.addEventListener("change", applyFilter);
  applyFilter();
  window.setTimeout(poll, pollMs);
}());
