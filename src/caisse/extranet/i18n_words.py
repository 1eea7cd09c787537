"""Words that come from the server rather than from a template: status labels, the Stripe event
descriptions, the users and invitation pages, notices, and French versions of error messages
(merged into :mod:`caisse.extranet.i18n`'s catalogues).

Errors are looked up as ``err.<code>.<param>`` then ``err.<code>`` (see
``pages.error_text``); English pages show the service's own message, which is already English
and more precise, so only French entries are needed here. A message without an entry is shown
in English, marked ``lang="en"``.
"""

from __future__ import annotations

from caisse.providers.stripe.catalog import EVENT_DESCRIPTIONS

_STATUSES_FR = {
    # orders and payments
    "open": "ouverte",
    "requires_action": "action requise",
    "processing": "en cours",
    "partially_paid": "payée en partie",
    "paid": "payée",
    "failed": "échec",
    "canceled": "annulée",
    "partially_refunded": "remboursée en partie",
    "refunded": "remboursée",
    "disputed": "contestée",
    "requires_payment_method": "moyen de paiement requis",
    "requires_confirmation": "confirmation requise",
    "requires_capture": "capture requise",
    "partially_funded": "financée en partie",
    "succeeded": "réussi",
    # disputes
    "warning_needs_response": "alerte : réponse requise",
    "warning_under_review": "alerte : en examen",
    "warning_closed": "alerte close",
    "needs_response": "réponse requise",
    "under_review": "en examen",
    "won": "gagnée",
    "lost": "perdue",
    "prevented": "évitée",
    # events, deliveries, endpoints, catalogue, users
    "pending": "en attente",
    "processed": "traité",
    "ignored": "ignoré",
    "unmatched": "sans commande",
    "delivered": "livré",
    "retrying": "nouvel essai prévu",
    "enabled": "actif",
    "disabled": "désactivé",
    "available": "disponible",
    "unavailable": "indisponible",
    "active": "actif",
    "deactivated": "désactivé",
    "invited": "invité",
    "expired": "expirée",
}

_EVENTS_FR = {
    "payment_intent.created": "Enregistre le paiement comme créé ; sans effet s'il est déjà "
    "plus avancé.",
    "payment_intent.requires_action": "Marque en attente d'une action du client (3-D Secure, "
    "redirection).",
    "payment_intent.processing": "Marque en cours : un moyen asynchrone (SEPA, ACH) se règle.",
    "payment_intent.amount_capturable_updated": "Enregistre l'autorisation et le montant "
    "capturable ; la commande reste en cours jusqu'à la capture (POST /v1/orders/{id}/capture) "
    "ou l'annulation.",
    "payment_intent.partially_funded": "Marque payée en partie : un virement en a couvert une "
    "partie.",
    "payment_intent.succeeded": "Marque payée pour amount_received ; livre et prévient les "
    "partenaires.",
    "payment_intent.payment_failed": "Enregistre la tentative échouée ; la commande reste payable.",
    "payment_intent.canceled": "Marque annulée (définitif) ; prévient les partenaires.",
    "charge.pending": "Stocké seulement : un paiement asynchrone en vol ; l'intent pilote l'état.",
    "charge.succeeded": "Confirme le paiement d'après le montant capturé (payée s'il couvre).",
    "charge.captured": "Confirme le montant d'une capture manuelle (payée s'il couvre).",
    "charge.failed": "Trace la tentative échouée ; l'événement PaymentIntent pilote l'état.",
    "charge.expired": "Stocké seulement : l'autorisation échue ne compte pas comme un "
    "remboursement ; le payment_intent.canceled envoyé avec annule la commande.",
    "charge.refunded": "Applique les remboursements d'après le cumul amount_refunded.",
    "charge.refund.updated": "Suit l'état d'un remboursement ; l'annule s'il échoue.",
    "refund.created": "Enregistre un remboursement, en attente ou réussi.",
    "refund.updated": "Suit le changement d'état d'un remboursement.",
    "refund.failed": "Annule un remboursement échoué (amount_refunded redescend).",
    "charge.dispute.created": "Ouvre une contestation avec sa date limite de preuves ; prévient "
    "les partenaires.",
    "charge.dispute.updated": "Suit la contestation (preuves envoyées, en examen).",
    "charge.dispute.funds_withdrawn": "Enregistre le montant contesté retiré du solde.",
    "charge.dispute.funds_reinstated": "Enregistre les fonds contestés rendus.",
    "charge.dispute.closed": "Clôt la contestation (gagnée, perdue ou alerte close) ; prévient.",
    "account.updated": "Met à jour les indicateurs paiements/virements et les exigences du "
    "marchand.",
    "account.application.deauthorized": "Marque le compte connecté déconnecté : paiements "
    "coupés, nouvelles commandes refusées.",
    "source.chargeable": "Stocké pour audit : caisse paie par PaymentIntents et ne crée jamais "
    "de Sources, il n'en a donc aucune à débiter.",
    "customer.source.updated": "Stocké pour audit ; caisse ne garde aucun moyen de paiement "
    "client.",
    "payment_method.automatically_updated": "Stocké pour audit ; caisse ne garde aucune carte "
    "enregistrée.",
    "issuing_card.updated": "Stocké pour audit ; caisse n'agit pas sur les cartes Issuing.",
    "issuing_cardholder.updated": "Stocké pour audit ; caisse n'agit pas sur les titulaires "
    "Issuing.",
}

_ERRORS_FR = {
    "err.invalid_request.email": "Adresse e-mail non valable.",
    "err.conflict.email": "Un utilisateur a déjà cette adresse e-mail.",
    "err.invalid_request.password": "Un mot de passe a au moins 10 caractères.",
    "err.invalid_request.confirm": "Les deux mots de passe diffèrent.",
    "err.permission_denied.user": "Vous ne pouvez pas vous désactiver vous-même.",
    "err.invalid_request.publishable_key": "La clé publiable doit être une clé pk_… de "
    "l'environnement affiché (test ou live).",
    "err.invalid_request.secret_key": "La clé secrète doit être une clé sk_… ou rk_… de "
    "l'environnement affiché (test ou live).",
    "err.invalid_request.webhook_secret": "Un secret de signature commence par whsec_.",
    "err.invalid_request.webhook_secrets": "Les secrets de signature commencent par whsec_ "
    "(au moins un, en nombre limité).",
    "err.invalid_request.account_id": "L'identifiant de compte est un acct_….",
    "err.invalid_request.url": "Cette URL n'est pas valable (https obligatoire en live).",
    "err.unsafe_target.url": "Cette adresse n'est pas autorisée : elle mène à une machine "
    "locale ou à un réseau privé.",
    "err.invalid_request.api_key": "La clé API du partenaire a au moins 32 caractères "
    "imprimables, sans espace autour.",
    "err.invalid_request.event_types": "Type de message inconnu.",
    "err.invalid_request.since": "La date est au format AAAA-MM-JJTHH:MM (UTC).",
    "err.conflict.id": "Ce point de terminaison est désactivé : réactivez-le d'abord.",
    "err.invalid_request.sku": "Un SKU fait 1 à 100 lettres latines, chiffres, « . », « - » "
    "ou « _ ».",
    "err.conflict.sku": "Ce SKU existe déjà : modifiez-le plutôt.",
    "err.invalid_request.price": "Le prix est un nombre positif comme 4.99.",
    "err.invalid_request.currency": "Devise inconnue (code ISO 4217 attendu, comme EUR).",
    "err.invalid_request.status": "L'état est « disponible » ou « indisponible ».",
    "err.invalid_request.name": "Le nom est obligatoire (200 caractères au plus).",
    "err.invalid_request.legal_name": "La raison sociale est obligatoire.",
    "err.invalid_request.legal.country": "Le pays est un code ISO 3166-1 à deux lettres (FR, BE…).",
    "err.invalid_request.legal.language": "La langue est « fr » ou « en ».",
    "err.invalid_request.legal.logo": "Le logo est une image PNG ou JPEG de taille limitée.",
    "err.invalid_request.project_id": "L'identifiant de projet Xsolla est numérique.",
    "err.invalid_request.firebase_project_id": "L'identifiant de projet Firebase fait 6 à 30 "
    "lettres minuscules, chiffres ou tirets.",
    "err.invalid_request.event_type": "Type d'événement inconnu ou refusé.",
    "err.provider_unavailable": "Le fournisseur de paiement ne répond pas ; réessayez dans un "
    "moment.",
    "err.provider_timeout": "Le fournisseur de paiement ne répond pas ; réessayez dans un moment.",
    "err.provider_rejected": "Le fournisseur de paiement a refusé la demande.",
    "err.not_found": "Il n'y a rien ici, ou cela appartient à quelqu'un d'autre.",
}

EN: dict[str, str] = {
    **{f"status.{k}": k.replace("_", " ") for k in _STATUSES_FR},
    **{f"stripe.event.{k}": v for k, v in EVENT_DESCRIPTIONS.items()},
    "users.title": "Users",
    "users.intro": "Everyone here can see and change this merchant's settings, in test and live.",
    "users.invite": "Invite a user",
    "users.invite_help": "Enter their e-mail address: they receive a link, valid for 72 hours "
    "and usable once, to choose their own password.",
    "users.invited": "Invitation created for {email}. It was sent by e-mail; you can also "
    "pass on this link yourself (shown only now, valid until {until}):",
    "users.activated": "User reactivated.",
    "users.deactivated": "User deactivated (or invitation withdrawn).",
    "users.you": "you",
    "users.created": "Added",
    "users.status": "Status",
    "users.actions": "Actions",
    "users.deactivate": "Deactivate",
    "users.reactivate": "Reactivate",
    "users.withdraw": "Withdraw invitation",
    "users.reinvite": "Send a new link",
    "users.until": "until",
    "invite.title": "Join",
    "invite.intro": "You were invited to the extranet as {email}. Choose your password (at "
    "least 10 characters).",
    "invite.password": "New password",
    "invite.confirm": "Confirm the password",
    "invite.submit": "Set my password and sign in",
    "invite.mail_subject": "{inviter} invites you to the {tenant} payments extranet",
    "invite.mail_body": "Hello,\n\n{inviter} invites you to the {tenant} payments extranet "
    "(caisse).\n\nChoose your password here (the link works once, for 72 hours):\n{link}\n\n"
    "If you did not expect this message, ignore it.\n",
    "orders.customer_search": "Customer (e-mail or name)",
    "orders.contains_help": "Reference and customer match any part, in any case; customer "
    "searches the e-mail address and the name.",
    "notices.title": "Notices",
    "notices.dismiss": "Dismiss",
    "notices.endpoint.disabled": "A partner endpoint was disabled by caisse",
}

FR: dict[str, str] = {
    **{f"status.{k}": v for k, v in _STATUSES_FR.items()},
    **{f"stripe.event.{k}": v for k, v in _EVENTS_FR.items()},
    **_ERRORS_FR,
    "users.title": "Utilisateurs",
    "users.intro": "Chacun ici peut voir et modifier les paramètres de ce marchand, en test "
    "et en live.",
    "users.invite": "Inviter un utilisateur",
    "users.invite_help": "Saisissez son adresse e-mail : il reçoit un lien, valable 72 heures "
    "et une seule fois, pour choisir lui-même son mot de passe.",
    "users.invited": "Invitation créée pour {email}. Elle a été envoyée par e-mail ; vous "
    "pouvez aussi transmettre ce lien vous-même (affiché maintenant seulement, valable "
    "jusqu'au {until}) :",
    "users.activated": "Utilisateur réactivé.",
    "users.deactivated": "Utilisateur désactivé (ou invitation retirée).",
    "users.you": "vous",
    "users.created": "Ajouté le",
    "users.status": "État",
    "users.actions": "Actions",
    "users.deactivate": "Désactiver",
    "users.reactivate": "Réactiver",
    "users.withdraw": "Retirer l'invitation",
    "users.reinvite": "Envoyer un nouveau lien",
    "users.until": "jusqu'au",
    "invite.title": "Rejoindre",
    "invite.intro": "Vous avez été invité à l'extranet en tant que {email}. Choisissez votre "
    "mot de passe (10 caractères au moins).",
    "invite.password": "Nouveau mot de passe",
    "invite.confirm": "Confirmez le mot de passe",
    "invite.submit": "Enregistrer et me connecter",
    "invite.mail_subject": "{inviter} vous invite à l'extranet de paiement de {tenant}",
    "invite.mail_body": "Bonjour,\n\n{inviter} vous invite à l'extranet de paiement de "
    "{tenant} (caisse).\n\nChoisissez votre mot de passe ici (le lien sert une fois, pendant "
    "72 heures) :\n{link}\n\nSi vous n'attendiez pas ce message, ignorez-le.\n",
    "orders.customer_search": "Client (e-mail ou nom)",
    "orders.contains_help": "Référence et client : une partie suffit, majuscules ou non ; "
    "client cherche dans l'adresse e-mail et le nom.",
    "notices.title": "Avis",
    "notices.dismiss": "Masquer",
    "notices.endpoint.disabled": "Un point de terminaison partenaire a été désactivé par caisse",
}
