"""The extranet's words in English and French, and how a request's language is chosen.

Order of preference: the language the user picked (cookie ``caisse_lang``), then the browser's
``Accept-Language``, then English. A missing French entry falls back to English, and a missing
key shows itself, so a gap is visible rather than silent.
"""

from __future__ import annotations

from collections.abc import Callable

from caisse.extranet import i18n_sections, i18n_words

LANGUAGES = ("en", "fr")
DEFAULT = "en"

EN: dict[str, str] = {
    "app.title": "caisse extranet",
    "nav.dashboard": "Dashboard",
    "nav.orders": "Orders",
    "nav.events": "Events",
    "nav.stripe": "Stripe",
    "nav.users": "Users",
    "nav.main": "Main navigation",
    "nav.skip": "Skip to content",
    "mode.label": "Test mode",
    "mode.on": "Viewing test data",
    "mode.off": "Viewing live data",
    "mode.banner": "TEST DATA — nothing here is real money, partners' staging URLs only.",
    "mode.test_badge": "TEST",
    "lang.switch": "Language",
    "auth.login": "Sign in",
    "auth.logout": "Sign out",
    "auth.email": "Email",
    "auth.password": "Password",
    "auth.invalid": "Wrong email or password.",
    "auth.throttled": "Too many failed attempts. Wait a few minutes and try again.",
    "auth.signed_out": "You are signed out.",
    "auth.intro": "Sign in to manage your payments.",
    "csrf.failed": "This form expired or did not come from this site. Reload the page and "
    "try again.",
    "error.title": "Something is not right",
    "error.not_found": "There is nothing here, or it belongs to someone else.",
    "error.back": "Back to the dashboard",
    "dash.title": "Dashboard",
    "dash.checklist": "Getting started",
    "dash.check.stripe_keys": "Paste your Stripe keys",
    "dash.check.signing_secret": "Add the webhook signing secret from Stripe",
    "dash.check.first_event": "Receive a first Stripe event (send a test event)",
    "dash.check.first_order": "Create a first order through the API",
    "dash.check.partner": "Add a partner endpoint",
    "dash.check.teammate": "Invite a teammate",
    "dash.done": "Done",
    "dash.todo": "To do",
    "dash.orders_count": "Orders",
    "dash.events_count": "Events received",
    "dash.failed_events": "Events in error",
    "dash.env_note": "The checklist is for the environment shown; test and live are set up "
    "separately.",
    "stripe.title": "Stripe settings",
    "stripe.intro": "Paste the keys from the Stripe dashboard (Developers → API keys), then "
    "create a webhook endpoint in Stripe with the URL and events below, and paste its signing "
    "secret here.",
    "stripe.keys": "API keys",
    "stripe.publishable_key": "Publishable key",
    "stripe.secret_key": "Secret key",
    "stripe.secret_key_help": "Leave empty to keep the saved key.",
    "stripe.account_id": "Connected account id (optional)",
    "stripe.signing_secret": "Webhook signing secret",
    "stripe.signing_secret_help": "Starts with whsec_. Adding one keeps the others active, so "
    "you can roll a secret without missing events.",
    "stripe.save": "Save keys",
    "stripe.saved": "Stripe settings saved.",
    "stripe.not_set": "No Stripe keys for this environment yet.",
    "stripe.expected_prefix": "Keys for this environment start with",
    "stripe.webhook": "Webhook endpoint",
    "stripe.webhook_url": "Webhook URL",
    "stripe.copy": "Copy",
    "stripe.copied": "Copied",
    "stripe.events": "Events to send",
    "stripe.events_help": "In Stripe, select exactly these event types:",
    "stripe.secrets": "Signing secrets",
    "stripe.add_secret": "Add secret",
    "stripe.retire": "Retire",
    "stripe.secret_added": "Signing secret added.",
    "stripe.secret_retired": "Signing secret retired.",
    "stripe.last_secret": "Keep at least one signing secret; add the new one first.",
    "stripe.check": "Check keys",
    "stripe.check_help": "Asks Stripe who these keys belong to.",
    "stripe.check_ok": "Stripe accepted the key.",
    "stripe.check_failed": "Stripe check failed",
    "stripe.account": "Account",
    "stripe.charges_enabled": "Charges enabled",
    "stripe.payouts_enabled": "Payouts enabled",
    "stripe.test_event": "Send a test event",
    "stripe.test_event_help": "Sends a realistic event, signed with your signing secret, to "
    "your webhook URL, the way Stripe would. Pick an order to make the event about it.",
    "stripe.test_event_live": "Test events can only be sent in test mode.",
    "stripe.event_type": "Event type",
    "stripe.about_order": "About order",
    "stripe.no_order": "No order",
    "stripe.send": "Send",
    "stripe.test_event_sent": "Event received and stored",
    "stripe.test_event_failed": "The webhook refused the event",
    "orders.title": "Orders",
    "orders.status": "Status",
    "orders.any": "Any",
    "orders.from": "From",
    "orders.to": "To",
    "orders.reference": "Reference",
    "orders.customer": "Customer email",
    "orders.filter": "Filter",
    "orders.reset": "Reset",
    "orders.none": "No orders match.",
    "orders.id": "Order",
    "orders.amount": "Amount",
    "orders.paid": "Paid",
    "orders.refunded": "Refunded",
    "orders.created": "Created",
    "orders.next": "Next page",
    "orders.first": "First page",
    "orders.detail": "Order",
    "orders.lines": "Lines",
    "orders.description": "Description",
    "orders.quantity": "Qty",
    "orders.unit_amount": "Unit price",
    "orders.payments": "Payments",
    "orders.refunds": "Refunds",
    "orders.disputes": "Disputes",
    "orders.timeline": "Timeline",
    "orders.timeline_empty": "Nothing has happened to this order yet.",
    "orders.provider_event": "Provider event",
    "orders.messages": "Partner messages",
    "orders.messages_empty": "No partner message yet.",
    "orders.simulate": "Simulate a Stripe event for this order",
    "orders.documents": "Invoice and credit notes",
    "events.title": "Events",
    "events.type": "Type",
    "events.status": "Processing",
    "events.received": "Received",
    "events.error": "Error",
    "events.none": "No events received yet.",
    "events.payload": "Raw payload",
    "events.headers": "Headers",
    "events.attempts": "Attempts",
    "events.order": "Order",
    "common.yes": "Yes",
    "common.no": "No",
    "common.none": "—",
}

FR: dict[str, str] = {
    "app.title": "Extranet caisse",
    "nav.dashboard": "Tableau de bord",
    "nav.orders": "Commandes",
    "nav.events": "Événements",
    "nav.stripe": "Stripe",
    "nav.users": "Utilisateurs",
    "nav.main": "Navigation principale",
    "nav.skip": "Aller au contenu",
    "mode.label": "Mode test",
    "mode.on": "Données de test",
    "mode.off": "Données réelles",
    "mode.banner": "DONNÉES DE TEST — aucun argent réel ici, seulement les URL de recette des "
    "partenaires.",
    "mode.test_badge": "TEST",
    "lang.switch": "Langue",
    "auth.login": "Se connecter",
    "auth.logout": "Se déconnecter",
    "auth.email": "E-mail",
    "auth.password": "Mot de passe",
    "auth.invalid": "E-mail ou mot de passe incorrect.",
    "auth.throttled": "Trop de tentatives échouées. Patientez quelques minutes avant de réessayer.",
    "auth.signed_out": "Vous êtes déconnecté.",
    "auth.intro": "Connectez-vous pour gérer vos paiements.",
    "csrf.failed": "Ce formulaire a expiré ou ne vient pas de ce site. Rechargez la page et "
    "réessayez.",
    "error.title": "Quelque chose ne va pas",
    "error.not_found": "Il n'y a rien ici, ou cela appartient à quelqu'un d'autre.",
    "error.back": "Retour au tableau de bord",
    "dash.title": "Tableau de bord",
    "dash.checklist": "Premiers pas",
    "dash.check.stripe_keys": "Coller vos clés Stripe",
    "dash.check.signing_secret": "Ajouter le secret de signature du webhook Stripe",
    "dash.check.first_event": "Recevoir un premier événement Stripe (envoyer un test)",
    "dash.check.first_order": "Créer une première commande par l'API",
    "dash.check.partner": "Ajouter un point de terminaison partenaire",
    "dash.check.teammate": "Inviter un collègue",
    "dash.done": "Fait",
    "dash.todo": "À faire",
    "dash.orders_count": "Commandes",
    "dash.events_count": "Événements reçus",
    "dash.failed_events": "Événements en erreur",
    "dash.env_note": "La liste porte sur l'environnement affiché ; test et production se "
    "configurent séparément.",
    "stripe.title": "Paramètres Stripe",
    "stripe.intro": "Collez les clés du tableau de bord Stripe (Développeurs → Clés API), puis "
    "créez dans Stripe un endpoint de webhook avec l'URL et les événements ci-dessous, et "
    "collez ici son secret de signature.",
    "stripe.keys": "Clés API",
    "stripe.publishable_key": "Clé publiable",
    "stripe.secret_key": "Clé secrète",
    "stripe.secret_key_help": "Laissez vide pour garder la clé enregistrée.",
    "stripe.account_id": "Identifiant de compte connecté (facultatif)",
    "stripe.signing_secret": "Secret de signature du webhook",
    "stripe.signing_secret_help": "Commence par whsec_. En ajouter un garde les autres actifs : "
    "vous pouvez changer de secret sans perdre d'événement.",
    "stripe.save": "Enregistrer les clés",
    "stripe.saved": "Paramètres Stripe enregistrés.",
    "stripe.not_set": "Pas encore de clés Stripe pour cet environnement.",
    "stripe.expected_prefix": "Les clés de cet environnement commencent par",
    "stripe.webhook": "Endpoint de webhook",
    "stripe.webhook_url": "URL du webhook",
    "stripe.copy": "Copier",
    "stripe.copied": "Copié",
    "stripe.events": "Événements à envoyer",
    "stripe.events_help": "Dans Stripe, sélectionnez exactement ces types d'événements :",
    "stripe.secrets": "Secrets de signature",
    "stripe.add_secret": "Ajouter le secret",
    "stripe.retire": "Retirer",
    "stripe.secret_added": "Secret de signature ajouté.",
    "stripe.secret_retired": "Secret de signature retiré.",
    "stripe.last_secret": "Gardez au moins un secret de signature ; ajoutez d'abord le nouveau.",
    "stripe.check": "Vérifier les clés",
    "stripe.check_help": "Demande à Stripe à qui appartiennent ces clés.",
    "stripe.check_ok": "Stripe a accepté la clé.",
    "stripe.check_failed": "La vérification Stripe a échoué",
    "stripe.account": "Compte",
    "stripe.charges_enabled": "Paiements activés",
    "stripe.payouts_enabled": "Virements activés",
    "stripe.test_event": "Envoyer un événement de test",
    "stripe.test_event_help": "Envoie un événement réaliste, signé avec votre secret, à votre "
    "URL de webhook, comme le ferait Stripe. Choisissez une commande pour qu'il la concerne.",
    "stripe.test_event_live": "Les événements de test ne s'envoient qu'en mode test.",
    "stripe.event_type": "Type d'événement",
    "stripe.about_order": "Commande concernée",
    "stripe.no_order": "Aucune commande",
    "stripe.send": "Envoyer",
    "stripe.test_event_sent": "Événement reçu et enregistré",
    "stripe.test_event_failed": "Le webhook a refusé l'événement",
    "orders.title": "Commandes",
    "orders.status": "Statut",
    "orders.any": "Tous",
    "orders.from": "Du",
    "orders.to": "Au",
    "orders.reference": "Référence",
    "orders.customer": "E-mail du client",
    "orders.filter": "Filtrer",
    "orders.reset": "Réinitialiser",
    "orders.none": "Aucune commande ne correspond.",
    "orders.id": "Commande",
    "orders.amount": "Montant",
    "orders.paid": "Payé",
    "orders.refunded": "Remboursé",
    "orders.created": "Créée le",
    "orders.next": "Page suivante",
    "orders.first": "Première page",
    "orders.detail": "Commande",
    "orders.lines": "Lignes",
    "orders.description": "Description",
    "orders.quantity": "Qté",
    "orders.unit_amount": "Prix unitaire",
    "orders.payments": "Paiements",
    "orders.refunds": "Remboursements",
    "orders.disputes": "Litiges",
    "orders.timeline": "Historique",
    "orders.timeline_empty": "Rien n'est encore arrivé à cette commande.",
    "orders.provider_event": "Événement du prestataire",
    "orders.messages": "Messages aux partenaires",
    "orders.messages_empty": "Aucun message aux partenaires pour l'instant.",
    "orders.simulate": "Simuler un événement Stripe pour cette commande",
    "orders.documents": "Facture et avoirs",
    "events.title": "Événements",
    "events.type": "Type",
    "events.status": "Traitement",
    "events.received": "Reçu le",
    "events.error": "Erreur",
    "events.none": "Aucun événement reçu pour l'instant.",
    "events.payload": "Contenu brut",
    "events.headers": "En-têtes",
    "events.attempts": "Tentatives",
    "events.order": "Commande",
    "common.yes": "Oui",
    "common.no": "Non",
    "common.none": "—",
}

EN.update(i18n_sections.EN)
FR.update(i18n_sections.FR)
EN.update(i18n_words.EN)
FR.update(i18n_words.FR)
CATALOGUES = {"en": EN, "fr": FR}


def negotiate(chosen: str | None, accept_language: str | None) -> str:
    """The user's choice if valid, else the best ``Accept-Language`` match, else English."""
    if chosen in LANGUAGES:
        return str(chosen)
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()[:2]))
    for _, _, lang in sorted(ranked):
        if lang in LANGUAGES:
            return lang
    return DEFAULT


def lookup(lang: str, key: str) -> str | None:
    """``key`` in ``lang``'s own catalogue only (no English fallback), or None."""
    return CATALOGUES.get(lang, EN).get(key)


def translator(lang: str) -> Callable[[str], str]:
    catalogue = CATALOGUES.get(lang, EN)

    def t(key: str) -> str:
        return catalogue.get(key) or EN.get(key) or key

    return t
