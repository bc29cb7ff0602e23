"""Server-side pages (login, step-up, consent, logout, errors): plain HTML, no JavaScript, zh-CN and en.

Every value is HTML-escaped when substituted; only fragments rendered here are inserted raw. Every
page is sent with anti-clickjacking headers (``X-Frame-Options: DENY`` and CSP
``frame-ancestors 'none'``), ``no-store`` and ``no-referrer``.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template

from litestar import Response

__all__ = ["LOCALES", "SECURITY_HEADERS", "Fragment", "page", "pick_locale", "render", "text"]

LOCALES = ("zh-CN", "en")
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "login_title": "登录市民通",
        "login_intro": "「{client}」请求使用您的市民通账号登录。",
        "sms_legend": "手机验证码登录",
        "password_legend": "密码登录",
        "mobile_label": "手机号码",
        "password_label": "密码",
        "code_label": "验证码",
        "send_code": "发送验证码",
        "code_sent": "验证码已发送至 {mobile}。",
        "sign_in": "登录",
        "cancel": "取消",
        "totp_title": "需要更高的认证等级",
        "totp_intro": "「{client}」要求三级认证：请输入身份验证器应用中的动态码。",
        "confirm": "确认",
        "consent_title": "授权确认",
        "consent_intro": "「{client}」请求获取以下信息：",
        "allow": "同意",
        "deny": "拒绝",
        "error_title": "无法完成请求",
        "logout_title": "退出登录",
        "logout_question": "要退出市民通的所有登录吗？",
        "logout_yes": "退出",
        "logged_out": "您已退出登录。",
        "footer": "市民通统一身份认证",
        "scope_openid": "您的账号标识",
        "scope_profile": "您的显示名称（部分隐藏）",
        "scope_phone": "您的手机号码",
        "scope_real_name": "您的实名信息（姓名、出生日期、性别）与认证等级",
        "scope_organisations": "您代理的单位及角色",
        # Only with offline_access does a grant outlive the sign-in (SSO session) it was made in;
        # withdrawing consent ends it (``GrantStore.lifetime``, OpenID Connect Core §11).
        "scope_offline_access": "本次登录结束后仍可访问，直至您撤销此授权",
        "scope_api": "代表您调用市民通接口",
    },
    "en": {
        "login_title": "Sign in to Citizen",
        "login_intro": "\u201c{client}\u201d asks you to sign in with your Citizen account.",
        "sms_legend": "Sign in with a code by SMS",
        "password_legend": "Sign in with a password",
        "mobile_label": "Mobile number",
        "password_label": "Password",
        "code_label": "Code",
        "send_code": "Send code",
        "code_sent": "A code was sent to {mobile}.",
        "sign_in": "Sign in",
        "cancel": "Cancel",
        "totp_title": "A higher level of assurance is needed",
        "totp_intro": "\u201c{client}\u201d needs level 3: enter the code from your authenticator app.",
        "confirm": "Confirm",
        "consent_title": "Allow access",
        "consent_intro": "\u201c{client}\u201d asks for:",
        "allow": "Allow",
        "deny": "Deny",
        "error_title": "The request cannot be completed",
        "logout_title": "Sign out",
        "logout_question": "Sign out of Citizen everywhere in this browser?",
        "logout_yes": "Sign out",
        "logged_out": "You are signed out.",
        "footer": "Citizen single sign-on",
        "scope_openid": "your account identifier",
        "scope_profile": "your display name (partly hidden)",
        "scope_phone": "your mobile number",
        "scope_real_name": "your verified real name, birth date, gender and level of assurance",
        "scope_organisations": "the organisations you act for, and your roles",
        "scope_offline_access": "access after this sign-in ends, until you withdraw this consent",
        "scope_api": "calls to the Citizen API on your behalf",
    },
}


class Fragment(str):
    """Already-rendered HTML, inserted without escaping."""

    __slots__ = ()


def pick_locale(ui_locales: str | None, accept_language: str | None = None) -> str:
    for candidate in (ui_locales or "").split() + [
        part.split(";")[0].strip() for part in (accept_language or "").split(",")
    ]:
        lowered = candidate.lower()
        if lowered.startswith("zh"):
            return "zh-CN"
        if lowered.startswith("en"):
            return "en"
    return "zh-CN"


def text(locale: str, key: str, **values: str) -> str:
    return _TEXT.get(locale, _TEXT["zh-CN"])[key].format(**values)


@cache
def _template(name: str) -> Template:
    return Template((resources.files(__package__) / f"{name}.html").read_text(encoding="utf-8"))


def render(name: str, **values: str) -> Fragment:
    escaped = {k: v if isinstance(v, Fragment) else html.escape(v, quote=True) for k, v in values.items()}
    return Fragment(_template(name).substitute(escaped))


def page(
    locale: str, title: str, body: Fragment, status: int = 200, headers: dict[str, str] | None = None
) -> Response[str]:
    document = render("layout", lang=locale, title=title, body=body, footer=text(locale, "footer"))
    return Response(
        content=str(document),
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )
