"""The closed sets every part of the hub shares: message types and unit kinds.

Nothing else in the code base spells a message type or a unit kind as a string.
"""

from __future__ import annotations

from enum import StrEnum


class MessageType(StrEnum):
    """Every message of the discharge process (*utskrivningsprocessen*), DOMAIN.md table."""

    ADMISSION_NOTICE = "admission_notice"  # inskrivningsmeddelande
    PLANNING_DOCUMENT = "planning_document"  # planeringsunderlag
    DISCHARGE_DATE_CHANGED = "discharge_date_changed"  # framflyttning
    GENERAL_MESSAGE = "general_message"  # meddelande
    READY_FOR_DISCHARGE = "ready_for_discharge"  # utskrivningsklar
    READY_FOR_DISCHARGE_RETRACTED = "ready_for_discharge_retracted"
    CARE_CONTACT_APPOINTED = "care_contact_appointed"  # fast vårdkontakt utsedd
    SIP_INVITATION = "sip_invitation"  # kallelse till SIP
    SIP_DECLINED = "sip_declined"  # patienten avböjer SIP
    DISCHARGE_NOTICE = "discharge_notice"  # utskrivningsmeddelande
    MESSAGE_OUTSIDE_EPISODE = "message_outside_episode"  # meddelande utanför vårdtillfälle
    CARE_REQUEST = "care_request"  # vårdbegäran
    EPISODE_UPDATED = "episode_updated"  # HL7 A08: listed health centre / municipality changed
    CANCELLATION = "cancellation"  # makulering


class UnitKind(StrEnum):
    """What kind of care unit a directory entry is."""

    HOSPITAL_WARD = "hospital_ward"  # vårdavdelning
    HEALTH_CENTRE = "health_centre"  # hälsocentral
    HOME_HEALTH_CARE = "home_health_care"  # kommunal hemsjukvård
    ASSESSMENT_UNIT = "assessment_unit"  # biståndsenhet
    OTHER_MUNICIPAL = "other_municipal"  # hemtjänst, korttidsenhet, LSS, ...
    REGIONAL_OPERATIONS = "regional_operations"  # regional fallback / operations desk
