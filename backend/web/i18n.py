"""The pages' two languages: simplified Chinese (the default) and English.

``text(lang, key, **values)`` looks a message up; an unknown key is a programming error (KeyError),
so a missing translation fails the tests rather than showing a key to a citizen.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["LANGUAGES", "Lang", "choose", "text"]

Lang = Literal["zh-CN", "en"]
LANGUAGES: Final[tuple[Lang, ...]] = ("zh-CN", "en")

_MESSAGES: Final[dict[str, tuple[str, str]]] = {
    # key: (zh-CN, en)
    "app_title": ("市民卡", "Citizen card"),
    "console_title": ("运营工作台", "Operators' console"),
    "switch_language": ("English", "中文"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "landing_intro": (
        "使用城市统一身份认证登录，查看您的市民卡、乘车码和电子钱包。",
        "Sign in with the city's single sign-on to see your citizen card, ride QR code and e-purse.",
    ),
    "signed_in_as": ("当前用户", "Signed in as"),
    "acting_for": ("代办单位", "Acting for"),
    "acting_for_self": ("本人", "Myself"),
    "switch": ("切换", "Switch"),
    "card": ("虚拟市民卡", "Virtual citizen card"),
    "card_number": ("卡号", "Card number"),
    "status": ("状态", "Status"),
    "status_active": ("正常", "active"),
    "status_frozen": ("已冻结", "frozen"),
    "status_lost": ("已挂失", "reported lost"),
    "status_closed": ("已注销", "closed"),
    "status_replaced": ("已补换", "replaced"),
    "expires_on": ("有效期至", "Valid until"),
    "no_card": ("您还没有市民卡。", "You have no citizen card yet."),
    "apply_card": ("申领市民卡", "Apply for the card"),
    "ride_qr": ("乘车码", "Ride QR code"),
    "qr_refresh": ("二维码每 {seconds} 秒自动刷新", "The code refreshes every {seconds} s"),
    "qr_unavailable": ("乘车码暂不可用", "The ride code is not available"),
    "activate_demo_phone": ("在本机（演示手机）开通乘车码", "Turn on the ride code on this (demo) phone"),
    "balance": ("电子钱包余额", "E-purse balance"),
    "balance_unknown": ("余额暂不可用", "Balance not available"),
    "recent": ("最近交易", "Recent transactions"),
    "no_recent": ("暂无交易", "No transactions yet"),
    "when": ("时间", "When"),
    "amount": ("金额", "Amount"),
    "channel": ("渠道", "Channel"),
    "state": ("状态", "State"),
    "topup": ("充值", "Top up"),
    "topup_amount": ("充值金额（元）", "Amount (yuan)"),
    "topup_submit": ("去支付", "Continue to payment"),
    "channel_unionpay": ("云闪付", "UnionPay"),
    "channel_alipay": ("支付宝", "Alipay"),
    "channel_wechatpay": ("微信支付", "WeChat Pay"),
    "err_amount_required": ("请输入充值金额", "Enter an amount"),
    "err_amount_format": ("金额格式不正确，例如 20 或 20.50", "Enter the amount in yuan, e.g. 20 or 20.50"),
    "err_amount_range": (
        "充值金额须在 0.01 至 {max} 元之间",
        "The amount must be between 0.01 and {max} yuan",
    ),
    "err_channel_required": ("请选择支付渠道", "Choose a payment channel"),
    "err_amount_refused": ("该金额不允许充值：{detail}", "This amount cannot be topped up: {detail}"),
    "err_generic": ("操作未成功：{detail}", "That did not work: {detail}"),
    "err_csrf": ("页面已过期，请重试。", "The page has expired; please try again."),
    "order": ("充值订单", "Top-up order"),
    "order_no": ("订单号", "Order number"),
    "pay_url": ("支付链接", "Payment link"),
    "simulate_pay": ("在模拟支付渠道完成支付", "Pay at the simulated channel"),
    "simulate_note": (
        "开发环境：此按钮代替手机上的支付应用。",
        "Development: this button stands in for the payment app on the phone.",
    ),
    "order_waiting": ("等待支付结果…", "Waiting for the payment…"),
    "order_credited": ("充值成功，新余额：", "Topped up. New balance:"),
    "back_to_card": ("返回市民卡", "Back to the card"),
    "state_created": ("已创建", "created"),
    "state_paying": ("支付中", "paying"),
    "state_paid": ("已支付", "paid"),
    "state_credited": ("已到账", "credited"),
    "state_awaiting_load": ("待圈存", "awaiting load"),
    "state_loading": ("圈存中", "loading"),
    "state_closed": ("已关闭", "closed"),
    "state_failed": ("失败", "failed"),
    "state_refunded": ("已退款", "refunded"),
    "card_actions": ("卡片管理", "Manage the card"),
    "freeze": ("冻结", "Freeze"),
    "unfreeze": ("解冻", "Unfreeze"),
    "frozen_by_operator": (
        "此卡由服务中心冻结，解冻、挂失或补换请携带身份证件到服务网点或致电客服",
        "The card service froze this card; to lift it, report it lost or replace it, "
        "visit a service desk with your ID or call us",
    ),
    "report_loss": ("挂失", "Report lost"),
    "done_freeze": ("卡片已冻结", "The card is frozen"),
    "done_unfreeze": ("卡片已解冻", "The card is active again"),
    "done_report_loss": ("已挂失，乘车码已停用", "Reported lost; the ride code no longer works"),
    "home_tiles": ("城市服务", "City services"),
    "tile_ok": ("正常", "ok"),
    "tile_stale": ("数据可能过时", "may be out of date"),
    "tile_degraded": ("服务降级", "degraded"),
    "tile_unavailable": ("暂不可用", "unavailable"),
    "organisation_mode": (
        "您正在代表 {name} 办理。市民卡和充值仅限本人。",
        "You are acting for {name}. The card and top-ups are for yourself only.",
    ),
    "session_expired": ("登录已过期，请重新登录。", "Your sign-in has expired; please sign in again."),
    "login_failed": ("登录未完成：{detail}", "Sign-in did not complete: {detail}"),
    # console
    "operator_sign_in": ("运营人员登录", "Operator sign-in"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "err_username_required": ("请输入用户名", "Enter your username"),
    "err_password_required": ("请输入密码", "Enter your password"),
    "err_credentials": ("用户名或密码不正确", "Wrong username or password"),
    "roles": ("角色", "Roles"),
    "terminals": ("终端", "Terminals"),
    "terminal": ("终端号", "Terminal"),
    "operator": ("运营单位", "Operator"),
    "kind": ("类型", "Kind"),
    "line": ("线路", "Line"),
    "online": ("在线", "online"),
    "offline": ("离线", "offline"),
    "disabled": ("已停用", "disabled"),
    "last_sign_on": ("最近签到", "Last sign-on"),
    "parameter_version": ("参数版本", "Parameters"),
    "blacklist_version": ("黑名单版本", "Blacklist"),
    "uploads_per_minute": ("上传/分钟", "Uploads/min"),
    "no_terminals": ("暂无终端", "No terminals"),
    "chart_title": ("每分钟交易（近 60 分钟）", "Transactions per minute (last 60 minutes)"),
    "accepted": ("已接受", "accepted"),
    "rejected": ("已拒绝", "rejected"),
    "suspense": ("挂账队列", "Suspense queue"),
    "reason": ("原因", "Reason"),
    "detail": ("说明", "Detail"),
    "no_suspense": ("挂账队列为空", "The suspense queue is empty"),
    "settlements": ("日结算（按运营单位）", "Daily settlements per operator"),
    "business_date": ("业务日期", "Business date"),
    "taps": ("笔数", "Taps"),
    "gross": ("总额", "Gross"),
    "net": ("净额", "Net"),
    "file": ("文件", "File"),
    "no_settlements": ("暂无结算", "No settlements yet"),
    "terminal_settlements": ("终端结算核对", "Terminal settlement checks"),
    "matched": ("一致", "matched"),
    "differs": ("不一致", "differs"),
    "reconciliations": ("渠道对账报告", "Reconciliation reports"),
    "channel_only": ("渠道单边", "channel only"),
    "platform_only": ("平台单边", "platform only"),
    "mismatched": ("金额不符", "amount mismatch"),
    "no_reconciliations": ("暂无对账报告", "No reconciliation reports"),
    "search": ("查询", "Search"),
    "card_search": ("卡片与人员查询", "Card and person search"),
    "search_hint": (
        "输入卡号、手机号或身份证号。结果中的个人信息均已脱敏。",
        "Enter a card number, mobile number or ID number. Personal data in the results is masked.",
    ),
    "query": ("查询内容", "Search for"),
    "err_query_required": ("请输入查询内容", "Enter something to search for"),
    "err_query_format": (
        "请输入完整的卡号、11 位手机号或 18 位身份证号",
        "Enter a full card number, an 11-digit mobile number or an 18-character ID number",
    ),
    "no_results": ("没有找到匹配的记录", "Nothing matches"),
    "searched_for": ("查询：{query}", "Searched for: {query}"),
    "person": ("人员", "Person"),
    "name": ("姓名", "Name"),
    "mobile": ("手机号", "Mobile"),
    "id_number": ("身份证号", "ID number"),
    "level": ("认证等级", "Level"),
    "audit": ("审计日志", "Audit log"),
    "audit_hint": (
        "输入账户、单位或终端相关的 ID（UUID）查看其审计记录。",
        "Enter an account or organisation id (UUID) to see its audit trail.",
    ),
    "subject_id": ("对象 ID", "Subject id"),
    "err_subject_format": ("请输入 UUID 格式的 ID", "Enter an id in UUID form"),
    "action": ("操作", "Action"),
    "actor": ("操作人", "Actor"),
    "target": ("对象", "Target"),
    "outcome": ("结果", "Outcome"),
    "no_audit": ("没有审计记录", "No audit entries"),
    "forbidden": ("您的角色无权查看此内容", "Your roles do not allow this"),
    "overview": ("概览", "Overview"),
    "refresh_note": (
        "页面每 15 秒刷新（填写备注时暂停）",
        "The page refreshes every 15 s, not while you write a note",
    ),
    "suspense_resolve": ("处理", "Resolve"),
    "suspense_note": ("处理说明（必填）", "Note (required)"),
    "suspense_accept": ("确认扣款", "Accept (charge)"),
    "suspense_reject": ("核销（不扣款）", "Reject (write off)"),
    "err_suspense_note": (
        "请选择确认扣款或核销，并填写处理说明（最多 500 字）",
        "Choose accept or reject and write a note (at most 500 characters)",
    ),
    "err_suspense_not_found": ("没有这条挂账记录", "No such suspense entry"),
    "err_suspense_resolved": ("这条挂账记录已被处理", "This suspense entry has already been resolved"),
    "err_suspense_not_acceptable": (
        "因此原因挂账的记录只能核销",
        "A record held for this reason can only be rejected",
    ),
    "err_suspense_unverified": (
        "存储的交易记录未通过校验，不能确认扣款",
        "The stored record does not pass the host's checks; it cannot be accepted",
    ),
    "err_suspense_counter_taken": (
        "这笔卡片交易已经扣过款",
        "This card transaction has already been charged",
    ),
    "err_suspense_ledger": ("账务系统拒绝扣款：{detail}", "The ledger refused the debit: {detail}"),
    # console: reconciliation suspense items (backend/web/console_reconcile.py)
    "suspense_items": ("对账挂账项", "Reconciliation suspense items"),
    "suspense_items_link": ("查看并处理对账挂账项", "See and resolve the suspense items"),
    "suspense_state_open": ("待处理", "open"),
    "suspense_state_resolved": ("已处理", "resolved"),
    "suspense_state_all": ("全部", "all"),
    "suspense_filter": ("筛选", "Filter"),
    "suspense_read_only": (
        "您的角色只能查看；处理挂账项需要 support 或 security_admin 角色。",
        "Your roles can read these; resolving them needs the role support or security_admin.",
    ),
    "suspense_refund": ("退款", "refund"),
    "suspense_platform_amount": ("平台金额", "Our amount"),
    "suspense_channel_amount": ("渠道金额", "Channel's amount"),
    "suspense_resolution": ("处理结论", "Resolution"),
    "suspense_resolution_credited_late": ("订单已补记入账", "order credited late"),
    "suspense_resolution_refund_settled": ("退款已确认成功", "our refund has succeeded since"),
    "suspense_resolution_timing_difference": ("跨日时间差", "timing difference (another day)"),
    "suspense_resolution_channel_refunded": ("渠道已原路退回", "refunded by the channel"),
    "suspense_resolution_channel_corrected": ("渠道已更正账单", "corrected by the channel"),
    "suspense_resolution_written_off": ("核销", "written off"),
    "suspense_reference": (
        "凭证号（渠道退款或更正单号）",
        "Reference (the channel's refund or correction no.)",
    ),
    "no_suspense_items": ("没有符合条件的挂账项", "No suspense items match"),
    "suspense_resolved_flash": ("挂账项已处理", "The suspense item is resolved"),
    "err_date_format": ("请输入 YYYY-MM-DD 格式的日期", "Enter a date as YYYY-MM-DD"),
    "err_suspense_item_not_found": ("没有该挂账项", "No such suspense item"),
    "err_suspense_item_resolved": ("该挂账项已被处理", "This suspense item is already resolved"),
    "err_resolve_refused": ("不能按此结论处理：{detail}", "It cannot be resolved so: {detail}"),
    "err_resolve_invalid": ("请检查填写内容：{detail}", "Check the form: {detail}"),
}


def choose(requested: str | None, accept_language: str | None = None) -> Lang:
    """The language asked for (``?lang=``/the session), else the browser's first known one, else zh-CN."""
    for candidate in (
        requested,
        *(part.split(";")[0].strip() for part in (accept_language or "").split(",")),
    ):
        if not candidate:
            continue
        low = candidate.lower()
        if low.startswith("en"):
            return "en"
        if low.startswith("zh"):
            return "zh-CN"
    return "zh-CN"


def text(lang: Lang, key: str, **values: object) -> str:
    zh, en = _MESSAGES[key]
    message = en if lang == "en" else zh
    return message.format(**values) if values else message
