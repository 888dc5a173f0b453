// Admin → users: list (role filter, pagination), change role, disable/enable.
import { h, replace, append } from '../dom.js';
import { t, formatDate } from '../i18n.js';
import { api, seg, withQuery } from '../api.js';
import { currentUser, can, ROLES } from '../auth.js';
import { pageHeader, loading, errorBox, emptyState, field, button, busy, confirmDialog, toast, toastError, pill, tableRow, scrollBox } from '../ui.js';

export default {
  title: () => t('users.title'),
  async render(main) {
    let after = null;
    const role = field({ label: t('users.role_filter'), name: 'role', type: 'select',
      options: [['', t('users.any_role')], ...ROLES.map((r) => [r, t(`role.${r}`)])] });
    const body = h('div');
    const tbody = h('tbody');
    const more = button(t('productions.more'), () => load(true), { testid: 'load-more' });
    const moreWrap = h('div', { class: 'more', hidden: true }, more);
    role.input.addEventListener('change', () => load(false));
    main.append(pageHeader(t('users.title')), h('div', { class: 'inline-filters' }, role.wrap), body, moreWrap);

    const cols = [
      { label: t('users.email'), cell: (u) => h('span', null, u.email, u.id === currentUser().id ? h('span', { class: 'muted' }, ` (${t('users.you')})`) : null) },
      { label: t('users.role'), cell: (u) => roleSelect(u) },
      { label: t('users.state'), cell: (u) => pill(u.is_active ? t('users.active') : t('users.disabled'), u.is_active ? 'ok' : 'bad') },
      { label: t('users.created'), cell: (u) => formatDate(u.created_at) },
      { label: t('common.actions'), cell: (u) => activeButton(u) },
    ];

    function roleSelect(u) {
      const self = u.id === currentUser().id; // never demote yourself by accident
      const sel = h('select', { 'aria-label': t('users.role_of', { email: u.email }), 'data-testid': 'user-role', disabled: self || !can('admin:roles') },
        ROLES.map((r) => h('option', { value: r, selected: r === u.role }, t(`role.${r}`))));
      sel.addEventListener('change', async () => {
        const next = sel.value;
        sel.disabled = true;
        try {
          const updated = await api.patch(`/v1/admin/users/${seg(u.id)}`, { role: next });
          Object.assign(u, updated);
          toast(t('users.role_changed', { email: u.email, role: t(`role.${next}`) }), 'success');
        } catch (err) {
          sel.value = u.role;
          toastError(err);
        } finally { sel.disabled = false; }
      });
      return sel;
    }

    function activeButton(u) {
      if (u.id === currentUser().id) return '';
      const b = button(u.is_active ? t('users.disable') : t('users.enable'), () => busy(b, async () => {
        if (u.is_active && !(await confirmDialog({ title: t('users.disable_title'), message: t('users.disable_body', { email: u.email }), confirmLabel: t('users.disable'), danger: true }))) return;
        const updated = await api.patch(`/v1/admin/users/${seg(u.id)}`, { is_active: !u.is_active });
        toast(updated.is_active ? t('users.enabled_done', { email: u.email }) : t('users.disabled_done', { email: u.email }), 'success');
        const row = b.closest('tr');
        row.replaceWith(rowFor(updated));
      }), { small: true, kind: u.is_active ? 'danger' : null, testid: 'toggle-user', ariaLabel: `${u.is_active ? t('users.disable') : t('users.enable')} ${u.email}` });
      return b;
    }

    const rowFor = (u) => tableRow(cols, u, () => ({ 'data-testid': 'user-row', 'data-id': u.id }));

    async function load(more_) {
      if (!more_) { replace(body, loading()); after = null; }
      try {
        const page = await api.get(withQuery('/v1/admin/users', { role: role.input.value, after: more_ ? after : '', limit: 50 }));
        after = page.next_after;
        if (!more_) {
          replace(tbody);
          replace(body, page.items.length ? scrollBox(t('users.title'), h('table', { class: 'table table--cards' },
            h('caption', { class: 'visually-hidden' }, t('users.title')),
            h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, c.label)))), tbody)) : emptyState(t('users.none')));
        }
        append(tbody, page.items.map(rowFor));
        moreWrap.hidden = !after;
      } catch (err) { replace(body, errorBox(err)); }
    }
    await load(false);
    return undefined;
  },
};
