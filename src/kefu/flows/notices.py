"""The engine's own fixed messages (zh / en): handoffs, expiry, stop, and the default re-ask hints."""

from __future__ import annotations

from kefu.flows.spec import Ask, Text

NOTICES: dict[str, Text] = {
    "too_many_tries": Text(
        "这一项几次都没能核对上。为了您的账户安全，我帮您转接人工客服继续处理。",
        "We could not confirm this after several tries. For your account's safety, I'll pass you to a human agent.",
    ),
    "unavailable_read": Text(
        "抱歉，订单系统暂时无法响应，这次没有为您办理任何操作。我已为您转接人工客服，请稍候。",
        "Sorry, the order system is not responding, so nothing was changed. I'm passing you to a human agent.",
    ),
    "unavailable_write": Text(
        "抱歉，订单系统暂时没有确认办理结果。请不要重复提交（重试也不会重复办理）。我已为您转接人工客服核实。",
        "Sorry, the order system did not confirm the request. Please don't resubmit (a retry never creates a "
        "duplicate). I'm passing you to a human agent to check.",
    ),
    "rejected": Text(
        "订单系统没有受理这次申请，需要人工客服看看具体原因。我帮您转接人工客服。",
        "The order system declined this request, and a human agent needs to look into it. I'll pass you over.",
    ),
    "not_found": Text(
        "没有找到这个订单，需要人工客服核实。我帮您转接人工客服。",
        "I couldn't find that order, so a human agent needs to check. I'll pass you over.",
    ),
    "not_verified": Text(
        "办理前需要先核对您的身份。我帮您转接人工客服。",
        "Your identity has to be confirmed first. I'll pass you to a human agent.",
    ),
    "flow_error": Text(
        "抱歉，这项办理暂时出了问题，没有为您做任何更改。我帮您转接人工客服。",
        "Sorry, something went wrong with this request and nothing was changed. I'll pass you to a human agent.",
    ),
    "abandoned": Text("好的，已停止办理，需要时随时找我。", "OK, I've stopped here. Come back any time."),
    "expired": Text(
        "上次的办理已超过有效时间，我们重新开始。", "Your earlier request has expired, so let's start again."
    ),
    "restarted": Text("好的，我们重新开始。", "OK, let's start again."),
    "welcome_back": Text(
        "欢迎回来，我们接着上次的办理：", "Welcome back — let's continue where we left off:"
    ),
}


def default_invalid(step: Ask) -> Text:
    hints = {
        "order_id": Text("订单号是 XP 开头的一串数字，例如 XP10023。", "An order number looks like XP10023."),
        "phone_last4": Text(
            "请回复下单手机号的后 4 位数字。", "Please reply with the last 4 digits of the phone number."
        ),
        "yes_no": Text("请回复「是」或「否」。", "Please answer yes or no."),
        "photos": Text(
            "请回复您有没有照片或视频（这里的聊天暂时还不能发送图片，由人工客服查看）。",
            "Please tell me whether you have a photo or video (a human agent checks it; this chat can't carry "
            "pictures yet).",
        ),
    }
    return hints.get(step.validator, Text("没有看懂您的回复。", "Sorry, I didn't catch that."))
