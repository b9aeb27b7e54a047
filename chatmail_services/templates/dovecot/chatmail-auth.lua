-- chatmail-auth.lua: Dovecot passdb/userdb in Lua (Dovecot 2.3 and 2.4) asking chatmail-auth.
-- Rendered from chatmail_services/templates/dovecot/chatmail-auth.lua (double-brace
-- placeholders are filled in at render time). Needs lua-socket and lua-cjson.
--
-- It sends exactly the lookups of the dict passdb/userdb (chatmail-auth.conf.ext) over
-- chatmail-auth's socket in the dict protocol: `shared/passdb/<%E password>"<%E user>` and
-- `shared/userdb/<%E user>`, so both front ends reach one account core with one wire format.
-- Dovecot checks the password against the returned hash itself, as on the dict path.
-- Fail closed: no socket, a timeout, a dict failure or a reply it cannot read is
-- INTERNAL_FAILURE (a temporary failure for the client), never a login.
-- Runs in Dovecot's auth-worker processes (2.3: blocking=yes, 2.4: use_worker = yes), one
-- request at a time each, so each worker keeps one connection and reuses it.

local unix = require("socket.unix")
local json = require("cjson.safe")

local SOCKET = "{{auth_socket}}"
local TIMEOUT = 10 -- seconds for connect, send and each reply line
local KEEP_CONNECTION = true -- false: a new connection per lookup (as Dovecot 2.3's dict client)
local HELLO = "H3\t2\t0\t\tauth\n"
local PASSDB_PREFIX = "shared/passdb/"
local USERDB_PREFIX = "shared/userdb/"

-- Dovecot's %E: a backslash before backslash, double and single quote.
local function escape_e(text)
  return (text:gsub("[\\\"']", "\\%0"))
end

-- Dovecot's str_tabescape / str_tabunescape (\001 first, so it is never doubled).
local TAB_ESCAPES = { ["\1"] = "\1" .. "1", ["\t"] = "\1t", ["\r"] = "\1r", ["\n"] = "\1n" }
local TAB_UNESCAPES = { ["1"] = "\1", t = "\t", r = "\r", n = "\n" }

local function tabescape(text)
  return (text:gsub("[\1\t\r\n]", TAB_ESCAPES))
end

local function tabunescape(text)
  return (text:gsub("\1(.)", function(ch) return TAB_UNESCAPES[ch] or ch end))
end

-- the connection this worker keeps (nil: none open)
local conn = nil

local function drop()
  if conn ~= nil then
    conn:close()
    conn = nil
  end
end

local function connect()
  local c = unix.stream()
  c:settimeout(TIMEOUT)
  local ok, err = c:connect(SOCKET)
  if not ok then
    c:close()
    return nil, "cannot connect to chatmail-auth: " .. tostring(err)
  end
  return c
end

-- Send one request line and read `lines` reply lines (until an empty line when `lines` is
-- nil). A kept connection that the server has closed meanwhile (restart) is retried once on a
-- new one; lookups are idempotent (a repeated first login finds the account just made).
local function request(line, lines)
  for _ = 1, 2 do
    local fresh = conn == nil
    if fresh then
      local c, err = connect()
      if c == nil then
        return nil, err
      end
      conn = c
    end
    local ok, err = conn:send(fresh and HELLO .. line or line)
    local reply = {}
    while ok do
      local got
      got, err = conn:receive("*l")
      if got == nil or (lines == nil and got == "") then
        ok = got ~= nil
        break
      end
      reply[#reply + 1] = got
      if lines == nil and got:sub(1, 1) == "F" then
        break -- a failed iteration has no empty line after it
      end
      if lines ~= nil and #reply >= lines then
        break
      end
    end
    if ok then
      if not KEEP_CONNECTION then
        drop()
      end
      return reply
    end
    drop()
    if fresh then
      return nil, "chatmail-auth did not answer: " .. tostring(err)
    end
  end
end

-- A lookup: "O", fields (strings) | "N" | "F", reason. Anything unreadable is "F".
local function lookup(key, user)
  local reply, err = request("L" .. tabescape(key) .. "\t" .. tabescape(user) .. "\n", 1)
  if reply == nil then
    return "F", err
  end
  local line = reply[1]
  local kind = line:sub(1, 1)
  if kind == "N" and line == "N" then
    return "N"
  elseif kind == "F" then
    return "F", "chatmail-auth: " .. tabunescape(line:sub(2))
  elseif kind ~= "O" then
    return "F", "chatmail-auth: unexpected reply"
  end
  local decoded = json.decode(tabunescape(line:sub(2)))
  if type(decoded) ~= "table" then
    return "F", "chatmail-auth: reply is not a JSON object"
  end
  local fields = {}
  for name, value in pairs(decoded) do
    if type(name) ~= "string" then
      return "F", "chatmail-auth: reply is not a JSON object"
    elseif type(value) == "string" then
      fields[name] = value
    elseif type(value) == "number" and value == math.floor(value) and math.abs(value) < 2 ^ 53 then
      fields[name] = string.format("%d", value)
    else
      return "F", "chatmail-auth: field " .. name .. " is neither a string nor an integer"
    end
  end
  return "O", fields
end

function auth_passdb_lookup(req)
  local user = req.user or ""
  local key = PASSDB_PREFIX .. escape_e(req.password or "") .. '"' .. escape_e(user)
  local kind, value = lookup(key, user)
  if kind == "O" then
    -- a hash with its {SCHEME}: a bare string would be compared as a plaintext password
    if value.password == nil or not value.password:match("^{[%w._-]+}.") then
      return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "chatmail-auth: reply has no hash"
    end
    return dovecot.auth.PASSDB_RESULT_OK, { password = value.password }
  elseif kind == "N" then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "no such account"
  end
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, value
end

function auth_userdb_lookup(req)
  local user = req.user or ""
  local kind, value = lookup(USERDB_PREFIX .. escape_e(user), user)
  if kind == "O" then
    return dovecot.auth.USERDB_RESULT_OK, value
  elseif kind == "N" then
    return dovecot.auth.USERDB_RESULT_USER_UNKNOWN, "no such account"
  end
  return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, value
end

-- `doveadm user '*'` and every `doveadm ... -A`: the dict iteration over shared/userdb/.
function auth_userdb_iterate()
  local reply, err = request("I0\t0\t" .. USERDB_PREFIX .. "\t\n", nil)
  if reply == nil then
    error(err)
  end
  local users = {}
  for _, line in ipairs(reply) do
    local key = tabunescape((line:match("^O([^\t]*)") or error("chatmail-auth: bad row")))
    if key:sub(1, #USERDB_PREFIX) == USERDB_PREFIX then
      users[#users + 1] = key:sub(#USERDB_PREFIX + 1)
    end
  end
  return users
end
