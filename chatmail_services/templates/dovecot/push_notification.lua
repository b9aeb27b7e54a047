-- Dovecot push_notification_lua driver of a chatmail relay (chatmail-services).
-- For each message LMTP delivers, set the mailbox attribute /private/messagenew: Dovecot
-- passes that set to chatmail-metadata (mail_attribute_dict), which notifies the
-- recipient's devices. A message a user sent to themselves notifies nobody (their own
-- devices already know about it).

function dovecot_lua_notify_begin_txn(user)
  return { user = user, mailboxes = {} }
end

local function lower(s)
  return s and string.lower(s) or ""
end

function dovecot_lua_notify_event_message_new(ctx, event)
  if lower(event.from_address) == lower(ctx.user.username) then
    return
  end
  ctx.mailboxes[event.mailbox] = true
end

function dovecot_lua_notify_end_txn(ctx)
  for name, _ in pairs(ctx.mailboxes) do
    local mailbox = ctx.user:mailbox(name)
    mailbox:sync() -- opens it: an attribute can only be set on an open mailbox
    mailbox:metadata_set("/private/messagenew", "1")
    mailbox:free()
  end
end
