"""The catalogue of Secure Score controls the simulator reports: names, categories, maximum scores,
descriptions and implementationStatus templates, modelled on what real tenants see.

Static data and one function, `catalog(size)`, that returns at least `size` controls (Defender for
Endpoint `scid_` controls fill the rest, as they do in real tenants with many devices).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from enum import StrEnum

IDENTITY, DATA, DEVICE, APPS, INFRASTRUCTURE = "Identity", "Data", "Device", "Apps", "Infrastructure"
CATEGORIES = (IDENTITY, DATA, DEVICE, APPS, INFRASTRUCTURE)


class Measure(StrEnum):
    """How a control is measured, which decides the extra string properties it carries on the newest day."""

    SWITCH = "switch"  # on/off: carries "on": "true" | "false"
    RATIO = "ratio"  # n of m subjects comply: carries "count" and "total"
    COUNT = "count"  # a number of things: carries "count" only
    STATIC = "static"  # nothing extra


@dataclass(frozen=True)
class Control:
    """One control as the catalogue knows it; `done`/`todo` are implementationStatus templates that may use
    {count}, {total}, {missing} and {subject}."""

    name: str
    category: str
    max_score: float
    measure: Measure
    description: str
    done: str
    todo: str
    subject: str = "users"
    title: str = ""  # the control profile's title: the description before it was dressed up

    @property
    def display_title(self) -> str:
        return self.title or self.name


S, R, C, X = Measure.SWITCH, Measure.RATIO, Measure.COUNT, Measure.STATIC

_RATIO_DONE = "You have 0 out of {total} {subject} that aren't protected by this setting."
_RATIO_TODO = "You have {missing} out of {total} {subject} that aren't protected by this setting."


def _c(
    name: str,
    category: str,
    max_score: float,
    measure: Measure,
    description: str,
    done: str,
    todo: str,
    subject: str = "users",
) -> Control:
    return Control(name, category, max_score, measure, description, done, todo, subject)


# (name, category, max score, measure, description, done, todo[, subject])
# fmt: off
_NAMED: tuple[Control, ...] = (
    _c("AdminMFAV2", IDENTITY, 10.0, R, "Require multifactor authentication for administrative roles.",
     "You have 0 out of {total} admins that aren't registered and protected with MFA.",
     "You have {missing} out of {total} admins that aren't registered and protected with MFA."),
    _c("MFARegistrationV2", IDENTITY, 9.0, R, "Ensure all users can complete multifactor authentication.",
     "You have 0 out of {total} users that aren't registered with MFA.",
     "You have {missing} out of {total} users that aren't registered with MFA."),
    _c("BlockLegacyAuthentication", IDENTITY, 8.0, S,
     "Enable policy to block legacy authentication.",
     "You have a Conditional Access policy that blocks legacy authentication.",
     "You don't have a Conditional Access policy that blocks legacy authentication."),
    _c("OneAdmin", IDENTITY, 1.0, C, "Designate more than one global admin.",
     "You currently have {count} global admins.", "You currently have {count} global admins."),
    _c("IntegratedApps", IDENTITY, 4.0, S, "Do not allow users to grant consent to unreliable applications.",
     "You have a user consent policy in place.", "Users can consent to any application."),
    _c("SelfServicePasswordReset", IDENTITY, 1.0, S, "Enable self-service password reset.",
     "Self-service password reset is enabled for all users.",
     "Self-service password reset is not enabled."),
    _c("SigninRiskPolicy", IDENTITY, 7.0, S, "Turn on sign-in risk policy.",
     "You have a sign-in risk policy that requires MFA for medium and high risk sign-ins.",
     "You have no sign-in risk policy."),
    _c("UserRiskPolicy", IDENTITY, 7.0, S, "Turn on user risk policy.",
     "You have a user risk policy that requires a secure password change for high risk users.",
     "You have no user risk policy."),
    _c("PWAgePolicyNew", IDENTITY, 8.0, S, "Set 'Password expiration policy' to 'Set passwords to never expire'.",
     "Passwords are set to never expire.", "Passwords expire every {count} days."),
    _c("PasswordHashSync", IDENTITY, 5.0, S, "Enable password hash sync if hybrid.",
     "Password hash synchronization is enabled.", "Password hash synchronization is not enabled."),
    _c("RoleOverlap", IDENTITY, 1.0, C, "Use least privileged administrative roles.",
     "You have {count} users with more than one admin role.",
     "You have {count} users with more than one admin role."),
    _c("aad_admin_accounts_separate_unassigned_cloudonly", IDENTITY, 3.0, R,
     "Ensure administrative accounts are separate, unassigned, and cloud-only.", _RATIO_DONE, _RATIO_TODO,
     "admins"),
    _c("aad_limited_administrative_roles", IDENTITY, 1.0, C,
     "Use limited administrative roles.", "You have {count} global admins.",
     "You have {count} global admins; use limited roles instead."),
    _c("aad_password_protection", IDENTITY, 1.0, S, "Enable Microsoft Entra ID Password Protection.",
     "Password protection is on.", "Password protection is off."),
    _c("aad_sign_in_freq_session_timeout", IDENTITY, 6.0, S,
     "Ensure sign-in frequency is enabled and browser sessions are not persistent for administrative users.",
     "A policy sets sign-in frequency for admins.", "No policy sets sign-in frequency for admins."),
    _c("aad_admin_consent_workflow", IDENTITY, 2.0, S, "Enable the admin consent workflow.",
     "The admin consent workflow is enabled.", "The admin consent workflow is disabled."),
    _c("aad_guest_invite_restrictions", IDENTITY, 3.0, S,
     "Ensure that only admins can invite guest users.", "Only admins can invite guests.",
     "Everyone in the organization can invite guests."),
    _c("aad_linkedin_connection_disables", IDENTITY, 1.0, S, "Ensure LinkedIn account connections are disabled.",
     "LinkedIn account connections are disabled.", "LinkedIn account connections are enabled."),
    _c("aad_phishing_MFA_strength", IDENTITY, 8.0, R,
     "Ensure phishing-resistant MFA strength is required for administrators.", _RATIO_DONE, _RATIO_TODO,
     "admins"),
    _c("aad_block_device_code_flow", IDENTITY, 4.0, S, "Block device code flow.",
     "A Conditional Access policy blocks device code flow.", "Device code flow is allowed."),
    _c("aad_custom_banned_passwords", IDENTITY, 1.0, S, "Enable a custom banned password list.",
     "A custom banned password list is enforced.", "No custom banned password list is enforced."),
    _c("aad_managed_device_registration", IDENTITY, 3.0, S,
     "Require a managed device or MFA for security information registration.",
     "Security info registration requires a managed device or MFA.",
     "Security info registration is not protected."),
    _c("aad_guest_user_access_restrictions", IDENTITY, 2.0, S,
     "Ensure guest user access is restricted.", "Guest user access is restricted.",
     "Guest users have the same access as members."),
    _c("aad_authentication_methods_sms_voice", IDENTITY, 2.0, S,
     "Disable SMS and voice call as authentication methods.", "SMS and voice call are disabled.",
     "SMS and voice call are enabled."),
    _c("aad_number_matching", IDENTITY, 3.0, S, "Require number matching for push notifications.",
     "Number matching is required.", "Number matching is not required."),
    _c("aad_system_preferred_mfa", IDENTITY, 2.0, S, "Enable system-preferred multifactor authentication.",
     "System-preferred MFA is enabled.", "System-preferred MFA is disabled."),
    _c("aad_emergency_access_accounts", IDENTITY, 2.0, C, "Maintain two emergency access accounts.",
     "You have {count} emergency access accounts.", "You have {count} emergency access accounts."),
    _c("aad_pim_approval_global_admin", IDENTITY, 3.0, S,
     "Require approval to activate the Global Administrator role.", "Activation requires approval.",
     "Activation does not require approval."),
    _c("aad_users_cant_create_tenants", IDENTITY, 1.0, S, "Restrict non-admin users from creating tenants.",
     "Users can't create tenants.", "Users can create tenants."),
    _c("aad_third_party_integrated_apps", IDENTITY, 2.0, S,
     "Ensure third-party integrated applications are not allowed.", "Users can't register applications.",
     "Users can register applications."),
    _c("mdi_unsecure_kerberos_delegation", IDENTITY, 5.0, R, "Remove unsecure Kerberos delegation.",
     _RATIO_DONE, _RATIO_TODO, "accounts"),
    _c("mdi_dormant_sensitive_accounts", IDENTITY, 3.0, R, "Remove dormant accounts from sensitive groups.",
     _RATIO_DONE, _RATIO_TODO, "accounts"),
    _c("mdi_clear_text_credentials", IDENTITY, 5.0, R, "Stop clear text credentials exposure.",
     _RATIO_DONE, _RATIO_TODO, "entities"),
    _c("mdi_laps_deployment", IDENTITY, 4.0, R, "Install LAPS on Windows computers.",
     _RATIO_DONE, _RATIO_TODO, "devices"),
    _c("mdi_weak_cipher_usage", IDENTITY, 3.0, R, "Stop weak cipher usage.", _RATIO_DONE, _RATIO_TODO,
     "accounts"),
    _c("mdi_print_spooler", IDENTITY, 2.0, R, "Disable the Print spooler service on domain controllers.",
     _RATIO_DONE, _RATIO_TODO, "domain controllers"),
    _c("dlp_datalossprevention", DATA, 10.0, S, "Turn on data loss prevention policies.",
     "You have {count} DLP policies turned on.", "You have no DLP policies turned on."),
    _c("mip_autosensitivitylabelspolicies", DATA, 5.0, S,
     "Create auto-labeling policies for sensitive information.", "You have auto-labeling policies.",
     "You have no auto-labeling policies."),
    _c("mip_sensitivitylabelspolicies", DATA, 5.0, S, "Publish sensitivity labels.",
     "Sensitivity labels are published.", "No sensitivity labels are published."),
    _c("mip_search_auditlog", DATA, 10.0, S, "Turn on audit log search.",
     "Audit log search is on.", "Audit log search is off."),
    _c("mip_purviewlabelconsent", DATA, 2.0, S,
     "Extend Microsoft Purview sensitivity labels to assets in the Data Map.", "Consent granted.",
     "Consent not granted."),
    _c("mip_retentionlabels", DATA, 3.0, S, "Publish retention labels.", "Retention labels are published.",
     "No retention labels are published."),
    _c("mip_insiderrisk_policies", DATA, 4.0, S, "Create insider risk policies.",
     "You have insider risk policies.", "You have no insider risk policies."),
    _c("mip_communicationcompliance", DATA, 2.0, S, "Create communication compliance policies.",
     "You have communication compliance policies.", "You have no communication compliance policies."),
    _c("mip_dlp_endpoint", DATA, 4.0, S, "Extend DLP policies to devices.",
     "Endpoint DLP is on.", "Endpoint DLP is off."),
    _c("mip_mandatory_labeling", DATA, 2.0, S, "Require users to apply a label to email and documents.",
     "Mandatory labeling is on.", "Mandatory labeling is off."),
    _c("CustomerLockBoxEnabled", DATA, 5.0, S, "Turn on customer lockbox.",
     "Customer lockbox is enabled.", "Customer lockbox is not enabled."),
    _c("exo_mailtipsenabled", APPS, 1.0, S, "Ensure MailTips are enabled for end users.",
     "MailTips are enabled.", "MailTips are not fully enabled."),
    _c("exo_mailboxaudit", APPS, 10.0, R, "Enable mailbox auditing for all users.", _RATIO_DONE, _RATIO_TODO,
     "mailboxes"),
    _c("exo_outlookaddins", APPS, 1.0, S, "Ensure users installing Outlook add-ins is not allowed.",
     "Users can't install add-ins.", "Users can install add-ins."),
    _c("exo_storageproviderrestricted", APPS, 2.0, S,
     "Ensure additional storage providers are restricted in Outlook on the web.",
     "Additional storage providers are restricted.", "Additional storage providers are allowed."),
    _c("exo_transportrulesallowlistdomains", APPS, 5.0, C,
     "Ensure mail transport rules do not allow specific domains.",
     "You have {count} transport rules that allow specific domains.",
     "You have {count} transport rules that allow specific domains."),
    _c("exo_oauth2clientprofileenabled", APPS, 8.0, S, "Ensure modern authentication for Exchange Online is enabled.",
     "Modern authentication is enabled.", "Modern authentication is disabled."),
    _c("exo_individualsharing", APPS, 1.0, S, "Ensure calendar details sharing with external users is disabled.",
     "Calendar sharing with external users is disabled.", "Calendar sharing with external users is enabled."),
    _c("exo_auditdisabledfalse", APPS, 1.0, S, "Ensure AuditDisabled organizationally is set to False.",
     "Organization-wide auditing is on.", "Organization-wide auditing is off."),
    _c("exo_dkim_enabled", APPS, 3.0, R, "Ensure DKIM is enabled for all Exchange Online domains.", _RATIO_DONE,
     _RATIO_TODO, "domains"),
    _c("exo_spf_record", APPS, 3.0, R, "Ensure SPF records are published for all Exchange domains.", _RATIO_DONE,
     _RATIO_TODO, "domains"),
    _c("exo_dmarc_record", APPS, 3.0, R, "Ensure DMARC records are published for all Exchange domains.",
     _RATIO_DONE, _RATIO_TODO, "domains"),
    _c("exo_smtp_auth_disabled", APPS, 3.0, S, "Ensure SMTP AUTH is disabled.", "SMTP AUTH is disabled.",
     "SMTP AUTH is enabled."),
    _c("exo_external_tagging", APPS, 1.0, S, "Ensure email from external senders is identified.",
     "External email tagging is on.", "External email tagging is off."),
    _c("exo_mailbox_auditbypass", APPS, 2.0, C, "Ensure mailbox audit bypass is not enabled.",
     "You have {count} mailboxes with audit bypass.", "You have {count} mailboxes with audit bypass."),
    _c("exo_autoforwarding_blocked", APPS, 5.0, S, "Ensure all forms of mail forwarding are blocked.",
     "Automatic forwarding is blocked.", "Automatic forwarding is allowed."),
    _c("mdo_safelinksforemail", APPS, 9.0, R, "Create Safe Links policies for email messages.", _RATIO_DONE,
     _RATIO_TODO),
    _c("mdo_safelinksforOfficeApps", APPS, 8.0, S, "Turn on Safe Links for Office applications.",
     "Safe Links for Office apps is on.", "Safe Links for Office apps is off."),
    _c("mdo_safeattachments", APPS, 8.0, R, "Turn on Safe Attachments in block mode.", _RATIO_DONE, _RATIO_TODO),
    _c("mdo_safeattachmentpolicy", APPS, 8.0, S,
     "Turn on Safe Attachments for SharePoint, OneDrive, and Microsoft Teams.",
     "Safe Attachments for SharePoint, OneDrive and Teams is on.", "It is off."),
    _c("mdo_atpprotection", APPS, 8.0, S, "Turn on Microsoft Defender for Office 365 in SharePoint, OneDrive, and "
     "Microsoft Teams.", "Protection is on.", "Protection is off."),
    _c("mdo_antiphishingpolicies", APPS, 9.0, S, "Set the phishing email level threshold at 2 or higher.",
     "An anti-phishing policy is in place.", "No anti-phishing policy is in place."),
    _c("mdo_impersonationaction", APPS, 9.0, S, "Quarantine messages detected from impersonated users.",
     "Impersonated messages are quarantined.", "Impersonated messages are delivered."),
    _c("mdo_targetedusersprotection", APPS, 8.0, R, "Enable impersonated user protection.", _RATIO_DONE,
     _RATIO_TODO),
    _c("mdo_targeteddomainprotection", APPS, 8.0, S, "Enable impersonated domain protection.",
     "Impersonated domain protection is on.", "Impersonated domain protection is off."),
    _c("mdo_mailboxintelligenceprotection", APPS, 9.0, S, "Enable mailbox intelligence protection.",
     "Mailbox intelligence protection is on.", "Mailbox intelligence protection is off."),
    _c("mdo_spoofprotection", APPS, 8.0, S, "Enable spoof intelligence.", "Spoof intelligence is on.",
     "Spoof intelligence is off."),
    _c("mdo_zapspam", APPS, 3.0, S, "Ensure that zero-hour auto purge for spam is enabled.", "ZAP for spam is on.",
     "ZAP for spam is off."),
    _c("mdo_zapphish", APPS, 9.0, S, "Ensure that zero-hour auto purge for phishing is enabled.",
     "ZAP for phishing is on.", "ZAP for phishing is off."),
    _c("mdo_zapmalware", APPS, 9.0, S, "Ensure that zero-hour auto purge for malware is enabled.",
     "ZAP for malware is on.", "ZAP for malware is off."),
    _c("mdo_commonattachmentsfilter", APPS, 5.0, S, "Ensure the common attachment types filter is enabled.",
     "The common attachment types filter is on.", "The common attachment types filter is off."),
    _c("mdo_highconfidencespamaction", APPS, 9.0, S, "Move messages detected as high confidence spam to quarantine.",
     "High confidence spam is quarantined.", "High confidence spam goes to Junk Email."),
    _c("mdo_phishthresholdlevel", APPS, 9.0, S, "Set the phishing email level threshold at 2 or higher.",
     "The threshold is {count}.", "The threshold is 1."),
    _c("mdo_bulkspamaction", APPS, 9.0, S, "Move messages detected as bulk spam to the Junk Email folder.",
     "Bulk spam goes to Junk Email.", "Bulk spam is delivered."),
    _c("mdo_enablesafelinksforclients", APPS, 9.0, S, "Ensure Safe Links for email is enabled for clients.",
     "Safe Links for clients is on.", "Safe Links for clients is off."),
    _c("mdo_trackingurls", APPS, 3.0, S, "Ensure user clicks are tracked in Safe Links.", "Clicks are tracked.",
     "Clicks are not tracked."),
    _c("mdo_allowedsenderscombined", APPS, 9.0, C, "Do not add allowed senders to anti-spam policies.",
     "You have {count} allowed senders.", "You have {count} allowed senders."),
    _c("mdo_blockmailforward", APPS, 5.0, S, "Block automatic email forwarding to external domains.",
     "External forwarding is blocked.", "External forwarding is allowed."),
    _c("spo_idle_session_timeout", APPS, 1.0, S, "Sign out inactive users in SharePoint Online.",
     "Idle session sign-out is on.", "Idle session sign-out is off."),
    _c("spo_sharing_external", APPS, 3.0, S, "Ensure external content sharing is restricted.",
     "External sharing is restricted.", "Anyone links are allowed."),
    _c("spo_guest_resharing", APPS, 2.0, S, "Ensure external users cannot share items they don't own.",
     "Guests can't reshare.", "Guests can reshare."),
    _c("spo_default_link_type", APPS, 2.0, S, "Ensure the default sharing link type is set to specific people.",
     "Default link type is specific people.", "Default link type is anyone with the link."),
    _c("spo_anyone_link_expiry", APPS, 2.0, C, "Ensure 'Anyone' links expire.",
     "Anyone links expire after {count} days.", "Anyone links never expire."),
    _c("spo_legacy_auth", APPS, 3.0, S, "Ensure SharePoint Online blocks legacy authentication.",
     "Apps that don't use modern authentication are blocked.", "Apps that don't use modern authentication "
     "are allowed."),
    _c("spo_onedrive_sync_restrict", APPS, 1.0, S, "Restrict OneDrive sync to domain-joined devices.",
     "Sync is restricted.", "Sync is not restricted."),
    _c("spo_infected_file_download", APPS, 2.0, S, "Ensure Office 365 SharePoint infected files are disallowed "
     "for download.", "Infected file download is blocked.", "Infected file download is allowed."),
    _c("spo_external_sharing_domains", APPS, 2.0, S, "Restrict external sharing to allowed domains.",
     "Sharing is limited to allowed domains.", "Sharing is not limited by domain."),
    _c("spo_guest_access_expire", APPS, 1.0, C, "Ensure guest access expires automatically.",
     "Guest access expires after {count} days.", "Guest access never expires."),
    _c("spo_verification_code_reauth", APPS, 1.0, C, "Ensure reauthentication with verification code is restricted.",
     "Guests reauthenticate every {count} days.", "Guests are not asked to reauthenticate."),
    _c("spo_unmanaged_devices", APPS, 3.0, S, "Limit access from unmanaged devices.",
     "Unmanaged devices get web-only access.", "Unmanaged devices get full access."),
    _c("meeting_restrictanonymousjoin_v1", APPS, 2.0, S, "Restricting anonymous users from joining meetings.",
     "current status: Off", "current status: On"),
    _c("meeting_autoadmitusers_v1", APPS, 2.0, S, "Only people in my org can bypass the lobby.",
     "current status: EveryoneInCompanyExcludingGuests", "current status: Everyone"),
    _c("meeting_dialinbypasslobby_v1", APPS, 1.0, S, "Restrict dial-in users from bypassing a meeting lobby.",
     "current status: Off", "current status: On"),
    _c("meeting_presenters_v1", APPS, 1.0, S, "Limit external participants from having control in a Teams meeting.",
     "current status: Off", "current status: On"),
    _c("meeting_externalchat_v1", APPS, 1.0, S, "Restrict anonymous users from starting Teams meetings.",
     "current status: Off", "current status: On"),
    _c("meeting_recordingpolicy_v1", APPS, 1.0, S, "Ensure meeting recording is disabled by default.",
     "current status: Off", "current status: On"),
    _c("meeting_designatedpresenter_v1", APPS, 1.0, S, "Only organizers and co-organizers can present.",
     "current status: OrganizerOnlyUserOverride", "current status: EveryoneUserOverride"),
    _c("teams_externalfilesharing", APPS, 1.0, S, "Ensure external file sharing in Teams is enabled for only "
     "approved cloud storage services.", "Only approved providers are enabled.", "All providers are enabled."),
    _c("teams_unmanaged_communication", APPS, 2.0, S, "Ensure communication with unmanaged Teams users is disabled.",
     "Communication with unmanaged users is off.", "Communication with unmanaged users is on."),
    _c("mcas_oauth_app_policies", APPS, 3.0, S, "Create an OAuth app policy to notify you about new OAuth "
     "applications.", "You have OAuth app policies.", "You have no OAuth app policies."),
    _c("mcas_activity_policies", APPS, 3.0, S, "Create a custom activity policy to discover suspicious usage "
     "patterns.", "You have custom activity policies.", "You have no custom activity policies."),
    _c("mcas_anomaly_detection", APPS, 3.0, S, "Set up anomaly detection policies.",
     "Anomaly detection policies are set up.", "No anomaly detection policies are set up."),
    _c("mcas_log_collector", APPS, 3.0, S, "Set up a Cloud Discovery log collector.", "A log collector is set up.",
     "No log collector is set up."),
    _c("mcas_app_connectors", APPS, 3.0, C, "Connect cloud apps with app connectors.",
     "You have {count} connected apps.", "You have no connected apps."),
    _c("mcas_session_policies", APPS, 3.0, S, "Deploy Conditional Access App Control for featured apps.",
     "Session policies are deployed.", "No session policies are deployed."),
    _c("mcas_file_policies", APPS, 3.0, S, "Create file policies to protect sensitive files.",
     "You have file policies.", "You have no file policies."),
    _c("mcas_discovery_policies", APPS, 2.0, S, "Set up a Cloud Discovery policy.",
     "You have Cloud Discovery policies.", "You have no Cloud Discovery policies."),
    _c("mcas_malware_detection", APPS, 3.0, S, "Turn on malware detection.", "Malware detection is on.",
     "Malware detection is off."),
    _c("mcas_impossible_travel", APPS, 2.0, S, "Review impossible travel alerts.", "The policy is on.",
     "The policy is off."),
    _c("forms_phishing_protection", APPS, 1.0, S, "Ensure internal phishing protection for Forms is enabled.",
     "Phishing protection is on.", "Phishing protection is off."),
    _c("azure_defender_plans", INFRASTRUCTURE, 5.0, S, "Enable Microsoft Defender for Cloud plans.",
     "Defender plans are enabled.", "Defender plans are not enabled."),
    _c("azure_storage_secure_transfer", INFRASTRUCTURE, 3.0, R, "Secure transfer to storage accounts should be "
     "enabled.", _RATIO_DONE, _RATIO_TODO, "storage accounts"),
    _c("azure_sql_auditing", INFRASTRUCTURE, 2.0, R, "Auditing on SQL server should be enabled.", _RATIO_DONE,
     _RATIO_TODO, "servers"),
    _c("azure_vm_endpoint_protection", INFRASTRUCTURE, 4.0, R, "Install endpoint protection on virtual machines.",
     _RATIO_DONE, _RATIO_TODO, "virtual machines"),
    _c("azure_keyvault_soft_delete", INFRASTRUCTURE, 2.0, R, "Key vaults should have soft delete enabled.",
     _RATIO_DONE, _RATIO_TODO, "key vaults"),
)

# fmt: on

# Defender for Endpoint recommendations: (title, max score). Numbered as real `scid_` controls are.
_DEVICE_TITLES: tuple[tuple[str, float], ...] = (
    ("Turn on Microsoft Defender Antivirus", 9.0),
    ("Turn on real-time protection", 9.0),
    ("Turn on cloud-delivered protection", 7.0),
    ("Update Microsoft Defender Antivirus definitions", 8.0),
    ("Turn on PUA protection in block mode", 5.0),
    ("Turn on Microsoft Defender Antivirus tamper protection", 8.0),
    ("Block executable content from email client and webmail", 7.0),
    ("Block all Office applications from creating child processes", 7.0),
    ("Block Office applications from creating executable content", 6.0),
    ("Block Office applications from injecting code into other processes", 6.0),
    ("Block JavaScript or VBScript from launching downloaded executable content", 6.0),
    ("Block execution of potentially obfuscated scripts", 6.0),
    ("Block Win32 API calls from Office macros", 6.0),
    ("Block credential stealing from the Windows local security authority subsystem", 8.0),
    ("Block process creations originating from PSExec and WMI commands", 5.0),
    ("Block untrusted and unsigned processes that run from USB", 5.0),
    ("Block persistence through WMI event subscription", 5.0),
    ("Block abuse of exploited vulnerable signed drivers", 6.0),
    ("Use advanced protection against ransomware", 7.0),
    ("Turn on Microsoft Defender Firewall for domain profile", 4.0),
    ("Turn on Microsoft Defender Firewall for private profile", 4.0),
    ("Turn on Microsoft Defender Firewall for public profile", 4.0),
    ("Enable Network Protection", 7.0),
    ("Enable Controlled Folder Access", 6.0),
    ("Turn on Microsoft Defender Credential Guard", 8.0),
    ("Enable BitLocker on operating system drives", 7.0),
    ("Encrypt all BitLocker-supported drives", 6.0),
    ("Disable SMBv1 client driver", 6.0),
    ("Disable SMBv1 server", 6.0),
    ("Enable 'Local Security Authority (LSA) protection'", 7.0),
    ("Set 'Minimum password length' to '14 or more characters'", 5.0),
    ("Disable 'Autoplay for non-volume devices'", 4.0),
    ("Set default behavior for 'AutoRun' to 'Enabled: Do not execute any autorun commands'", 4.0),
    ("Disable 'Enumerate administrator accounts on elevation'", 3.0),
    ("Disable 'Allow Basic authentication' for WinRM Client", 5.0),
    ("Disable 'Allow Basic authentication' for WinRM Service", 5.0),
    ("Set 'Interactive logon: Machine inactivity limit' to '900 or fewer second(s), but not 0'", 3.0),
    ("Enable 'Require additional authentication at startup'", 5.0),
    ("Disable the local storage of passwords and credentials", 4.0),
    ("Set 'Account lockout threshold' to 1-10 invalid login attempts", 4.0),
    ("Enable 'Microsoft network client: Digitally sign communications (always)'", 5.0),
    ("Set LAN Manager authentication level to 'Send NTLMv2 response only. Refuse LM & NTLM'", 5.0),
    ("Disable 'Solicited Remote Assistance'", 3.0),
    ("Disable Anonymous enumeration of shares", 4.0),
    ("Enable 'Apply UAC restrictions to local accounts on network logons'", 6.0),
    ("Set User Account Control (UAC) to automatically deny elevation requests", 5.0),
    ("Update Microsoft Edge for Windows", 6.0),
    ("Update Google Chrome", 6.0),
    ("Update Mozilla Firefox", 5.0),
    ("Update Microsoft Office", 7.0),
    ("Update Adobe Acrobat Reader", 5.0),
    ("Update Windows 11 operating system", 9.0),
    ("Update Windows 10 operating system", 9.0),
    ("Update Zoom client", 4.0),
    ("Update 7-Zip", 3.0),
    ("Update Java SE Runtime Environment", 5.0),
    ("Fix onboarding issues on devices", 6.0),
    ("Enable EDR in block mode", 7.0),
    ("Turn on Microsoft Defender SmartScreen app and file checking", 5.0),
    ("Set 'Turn off Microsoft Defender SmartScreen' to 'Enabled: Warn and prevent bypass'", 4.0),
)

_LONG_RATIONALE = (
    " Attackers who gain a foothold commonly look for the weakest configuration across many accounts and"
    " devices, and a single gap is often enough for lateral movement. This recommendation is evaluated daily"
    " against your current configuration; changes you make can take up to 48 hours to be reflected in your"
    " score. Review the affected entities, confirm that the change does not break business processes that"
    " depend on the legacy behaviour, roll it out to a pilot group first, and then to everyone. Where a"
    " third-party product already provides an equivalent protection, you can mark the control as resolved"
    " through a third party so that the points are awarded without the change."
)


def _describe(index: int, text: str) -> str:
    """Vary description shapes as real payloads do: plain, HTML, and long prose."""
    if index % 5 == 1:
        return f'<p>{text}</p><p>Learn more in the <a href="https://learn.microsoft.com/">documentation</a>.</p>'
    if index % 7 == 3:
        return text + _LONG_RATIONALE
    return text


def _named_controls() -> list[Control]:
    return [
        dataclasses.replace(
            control, description=_describe(index, control.description), title=control.description.rstrip(".")
        )
        for index, control in enumerate(_NAMED)
    ]


def _device_control(number: int, index: int) -> Control:
    title, max_score = _DEVICE_TITLES[index % len(_DEVICE_TITLES)]
    revision = index // len(_DEVICE_TITLES)
    # Past the titled list, later "revisions" of a title stand in for the long tail of real recommendations.
    suffix = f" (baseline {2020 + revision})" if revision else ""
    return Control(
        name=f"scid_{number}",
        category=DEVICE,
        max_score=max_score,
        measure=Measure.RATIO,
        description=_describe(index, title + suffix),
        done="All {total} devices are configured.",
        todo="{missing} of {total} devices are exposed.",
        subject="devices",
        title=title + suffix,
    )


def _device_number(index: int) -> int:
    # Real numbering comes in families: 2000s (antivirus), 5000s (hardening), 6000s (software updates).
    families = (2000, 4000, 5000, 6000, 7000)
    return families[index % len(families)] + 10 * (index // len(families)) + index % 3


@functools.cache
def catalog(size: int = 240) -> tuple[Control, ...]:
    """At least `size` controls, always in the same order: named controls first, then `scid_` controls."""
    controls = _named_controls()
    names = {control.name for control in controls}
    index = 0
    while len(controls) < size:
        control = _device_control(_device_number(index), index)
        if control.name not in names:  # families overlap only in catalogues far larger than any tenant's
            controls.append(control)
            names.add(control.name)
        index += 1
    return tuple(controls)
