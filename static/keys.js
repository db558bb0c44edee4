// Keyboard shortcuts for the staff page (issue 17). Progressive enhancement only: every action
// is a link or a button as well, and without this script nothing changes.
//   j / k        the next / previous request in a list (the queue, the requests page)
//   o            open the request picked with j / k
//   a / r / c    on a request's page: the apply form, the reject message, the comment box
//   ?            the list of keys (Escape closes it)
//   Ctrl+Enter   send the form being typed in (Cmd+Enter on a Mac)
// Keys typed into a field are left to the field, but for Ctrl+Enter; keys with Alt, Ctrl or
// Cmd are left to the browser.
(function () {
  "use strict";
  var LINK = 'a[href^="/requests/"]';
  var rows = Array.prototype.filter.call(
    document.querySelectorAll("table.list tbody tr"),
    function (tr) { return tr.querySelector(LINK); }
  );
  var at = -1;
  var help = document.getElementById("keys-help");

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  // The picked row is marked, and focus moves to its link: a screen reader follows it, and
  // Enter opens it as any link.
  function pick(i) {
    if (!rows.length) {
      return false;
    }
    at = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (tr, n) { tr.classList.toggle("picked", n === at); });
    rows[at].querySelector(LINK).focus();
    rows[at].scrollIntoView({ block: "nearest" });
    return true;
  }

  function open() {
    if (at < 0) {
      return false;
    }
    window.location.href = rows[at].querySelector(LINK).href;
    return true;
  }

  function toForm(action) {
    var form = document.querySelector('form[action$="/' + action + '"]');
    if (!form) {
      return false;
    }
    var field = form.querySelector("textarea, select, input:not([type=hidden]), button");
    if (!field) {
      return false;
    }
    field.focus();
    form.scrollIntoView({ block: "nearest" });
    return true;
  }

  function showHelp(show) {
    if (!help) {
      return false;
    }
    help.hidden = !show;
    if (show) {
      help.focus();
    }
    return true;
  }

  document.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      var form = e.target && e.target.form;
      if (form) {
        e.preventDefault();
        if (form.requestSubmit) {
          form.requestSubmit();
        } else {
          form.submit();
        }
      }
      return;
    }
    if (e.altKey || e.ctrlKey || e.metaKey || typing(e.target)) {
      return;
    }
    var done = false;
    switch (e.key) {
      case "j": done = pick(at + 1); break;
      case "k": done = pick(at < 0 ? 0 : at - 1); break;
      case "o": done = open(); break;
      case "a": done = toForm("apply"); break;
      case "r": done = toForm("reject"); break;
      case "c": done = toForm("comment"); break;
      case "?": done = showHelp(help ? help.hidden : false); break;
      case "Escape": done = help && !help.hidden ? showHelp(false) : false; break;
    }
    if (done) {
      e.preventDefault();
    }
  });
})();
