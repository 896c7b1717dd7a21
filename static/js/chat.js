// Web chat: send with fetch, read the server-sent events of the answer, grow the reply as it streams.
(function () {
  "use strict";
  var form = document.querySelector("[data-chat-form]");
  if (!form) return;
  var conversation = document.querySelector("[data-conversation]");
  var errorBox = document.querySelector("[data-chat-error]");
  var textarea = form.querySelector("textarea");
  var sessionInput = form.querySelector("input[name=session]");
  var sendButton = form.querySelector("button[type=submit]");
  var modelSelect = document.getElementById("chat-model");
  var stopButton = form.querySelector("[data-chat-stop]");
  var controller = null;

  // Answers are Markdown: parsed by marked, cleaned by DOMPurify (no scripts, no event handlers), code
  // coloured by highlight.js. Without those libraries the raw text is shown, as before.
  var markdown = window.marked && window.DOMPurify;
  if (markdown) {
    DOMPurify.addHook("afterSanitizeAttributes", function (node) {
      if (node.tagName === "A") { node.setAttribute("target", "_blank"); node.setAttribute("rel", "noopener noreferrer"); }
    });
  }

  function copyText(text, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else { fallbackCopy(text); done(); }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  function copyButton(label, text) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy-btn";
    button.textContent = "Copy";
    button.setAttribute("aria-label", label);
    button.addEventListener("click", function () { copyText(text(), button); });
    return button;
  }

  // Render the whole answer again from its Markdown; while streaming, at most once per frame.
  function render(body) {
    body.pending = false;
    if (!markdown) { body.textContent = body.raw; return; }
    body.classList.add("md");
    // No images or styles from a model's answer: nothing it writes may load from elsewhere or restyle the page.
    body.innerHTML = DOMPurify.sanitize(marked.parse(body.raw, {gfm: true, breaks: true}),
                                        {FORBID_TAGS: ["img", "style"], FORBID_ATTR: ["style"]});
    body.querySelectorAll("pre > code").forEach(function (code) {
      if (window.hljs) hljs.highlightElement(code);
      code.parentNode.appendChild(copyButton("Copy code", function () { return code.textContent; }));
    });
  }

  function schedule(body) {
    if (body.pending) return;
    body.pending = true;
    requestAnimationFrame(function () { render(body); });
  }

  function answerTools(message, body) {
    var tools = document.createElement("div");
    tools.className = "msg-tools";
    tools.appendChild(copyButton("Copy answer", function () { return body.raw; }));
    message.appendChild(tools);
  }

  function bubble(role, text) {
    var empty = conversation.querySelector("[data-chat-empty]");
    if (empty) empty.remove();
    var div = document.createElement("div");
    div.className = "msg msg-" + role;
    var label = document.createElement("span");
    label.className = "msg-role";
    label.textContent = role === "user" ? "You" : (modelSelect ? modelSelect.value : "Model");
    var body = document.createElement("span");
    body.className = "msg-text";
    body.textContent = text;
    body.raw = text;
    div.append(label, body);
    conversation.appendChild(div);
    conversation.scrollTop = conversation.scrollHeight;
    return body;
  }

  function listSession(id, title) {
    var heading = document.getElementById("chat-title");
    if (heading) heading.textContent = title.slice(0, 60);
    var list = document.querySelector(".sessions");
    if (!list) {
      list = document.createElement("ul");
      list.className = "sessions";
      var hint = document.querySelector("[data-sessions-empty]");
      if (hint) hint.replaceWith(list);
    }
    list.querySelectorAll("a[aria-current]").forEach(function (a) { a.removeAttribute("aria-current"); });
    var item = document.createElement("li"), link = document.createElement("a"), meta = document.createElement("span");
    link.href = "/chat/" + id + "/";
    link.setAttribute("aria-current", "page");
    link.textContent = title.length > 40 ? title.slice(0, 39) + "…" : title;
    meta.className = "meta";
    meta.textContent = (modelSelect ? modelSelect.value : "") + "\u00a0· just now";
    link.appendChild(meta);
    item.appendChild(link);
    list.prepend(item);
  }

  function showError(message) {
    errorBox.textContent = message;
    textarea.setAttribute("aria-invalid", message ? "true" : "false");
  }

  function busy(on) {
    sendButton.disabled = on;
    sendButton.textContent = on ? "Answering…" : "Send";
    stopButton.hidden = !on;
    form.setAttribute("aria-busy", on ? "true" : "false");
  }

  function handle(block, reply) {
    var event = "message", data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) event = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
    });
    var payload = data ? JSON.parse(data) : {};
    if (event === "session") {
      if (String(sessionInput.value) !== String(payload.id)) listSession(payload.id, reply.dataset.question);
      sessionInput.value = payload.id;
      history.replaceState(null, "", "/chat/" + payload.id + "/");
    } else if (event === "error") {
      showError(payload.message);
      reply.parentNode.classList.add("msg-failed");
      // The turn was not kept: give the question back so it can be sent again.
      if (!textarea.value) textarea.value = reply.dataset.question || "";
    } else if (event === "message" && payload.delta) {
      reply.raw += payload.delta;
      schedule(reply);
      conversation.scrollTop = conversation.scrollHeight;
    }
  }

  async function readStream(response, reply) {
    var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, {stream: true});
      var cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        handle(buffer.slice(0, cut), reply);
        buffer = buffer.slice(cut + 2);
      }
    }
  }

  function lastPair() {
    var all = conversation.querySelectorAll(".msg");
    var question = all[all.length - 2], answer = all[all.length - 1];
    if (!question || !answer || !question.classList.contains("msg-user") || !answer.classList.contains("msg-assistant")) {
      return null;
    }
    return {question: question, answer: answer};
  }

  function toolsOf(message) {
    var tools = message.querySelector(".msg-tools");
    if (!tools) {
      tools = document.createElement("div");
      tools.className = "msg-tools";
      message.appendChild(tools);
    }
    return tools;
  }

  function toolButton(label, name, onClick) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy-btn";
    button.textContent = label;
    button.dataset[name] = "";
    button.addEventListener("click", onClick);
    return button;
  }

  // The last answer can be asked for again, and the last question edited and sent again: both replace
  // that exchange (the server swaps it only once the new answer is complete).
  function offerRedo() {
    conversation.querySelectorAll("[data-regenerate], [data-edit]").forEach(function (b) { b.remove(); });
    var pair = lastPair();
    if (!pair || !form.dataset.ready || sendButton.disabled) return;
    var question = pair.question.querySelector(".msg-text").textContent;
    toolsOf(pair.answer).appendChild(toolButton("Regenerate", "regenerate", function () {
      send({text: question, regenerate: true});
    }));
    toolsOf(pair.question).appendChild(toolButton("Edit", "edit", function () {
      textarea.value = question;
      form.dataset.replace = "last";
      showError("");
      textarea.focus();
    }));
  }

  async function send(options) {
    options = options || {};
    var text = options.text !== undefined ? options.text : textarea.value.trim();
    if (!text) { showError("Type a message first."); textarea.focus(); return; }
    showError("");
    var data = new FormData(form);
    data.set("message", text);
    if (modelSelect) data.set("model", modelSelect.value);
    var pair = (options.regenerate || form.dataset.replace === "last") ? lastPair() : null;
    delete form.dataset.replace;
    var removed = pair ? (options.regenerate ? [pair.answer] : [pair.question, pair.answer]) : [];
    if (pair) data.set("replace", "last");
    removed.forEach(function (el) { el.remove(); });
    busy(true);
    if (!options.regenerate) bubble("user", text);
    var reply = bubble("assistant", "");
    reply.dataset.question = text;
    reply.parentNode.classList.add("streaming");
    if (!options.regenerate) textarea.value = "";  // a regenerate leaves whatever is being typed alone
    controller = new AbortController();
    try {
      var response = await fetch(form.action, {method: "POST", body: data, credentials: "same-origin", signal: controller.signal,
        headers: {"X-CSRFToken": data.get("csrfmiddlewaretoken"), "Accept": "text/event-stream"}});
      if (!response.ok) {
        var body = await response.json().catch(function () { return {}; });
        throw new Error(body.error ? body.error.message : "The portal answered " + response.status + ". Try again.");
      }
      await readStream(response, reply);
    } catch (err) {
      if (err.name === "AbortError") { reply.parentNode.classList.add("msg-stopped"); return; }
      reply.parentNode.remove();
      if (!options.regenerate && conversation.lastElementChild) conversation.lastElementChild.remove();
      // Nothing was replaced: show the exchange that is still the chat's.
      removed.forEach(function (el) { conversation.appendChild(el); });
      if (!options.regenerate) textarea.value = text;
      showError(err.message || "Could not reach the portal. Check your connection and try again.");
    } finally {
      if (reply.parentNode) {
        reply.parentNode.classList.remove("streaming");
        render(reply);
        if (reply.raw) answerTools(reply.parentNode, reply);
      }
      busy(false);
      offerRedo();
      textarea.focus();
    }
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); send(); });
  // Stopping closes the stream; the portal keeps the part of the answer written so far.
  stopButton.addEventListener("click", function () { if (controller) controller.abort(); });
  textarea.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(); }
  });
  // Esc stops an answer that is streaming, wherever the focus is; otherwise it gives up an edit.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    if (controller && !stopButton.hidden) { event.preventDefault(); controller.abort(); }
    else if (form.dataset.replace) { delete form.dataset.replace; textarea.value = ""; }
  });
  // Past answers were written by the server as text: render their Markdown too.
  conversation.querySelectorAll(".msg-assistant .msg-text").forEach(function (body) {
    body.raw = body.textContent;
    render(body);
    answerTools(body.parentNode, body);
  });
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
  conversation.scrollTop = conversation.scrollHeight;
  // Keys typed before this point would not send; tests and scripts wait for this mark.
  form.dataset.ready = "true";
  offerRedo();
})();
